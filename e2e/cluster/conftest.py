"""Fixtures for the end-to-end tests. They run against whatever cluster e2e/test points
them at: the loopback harness of e2e/up, or a kind cluster brought up by `tilt up`."""

import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from jaeger import Jaeger  # noqa: E402
from kube import Kubectl  # noqa: E402
from trace_view import render  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "deploy" / "samples").glob("*.yaml"))
# The service name kube-apiserver reports its spans under.
API_SERVER = "apiserver"


def _required(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through e2e/test or e2e/run", pytrace=False)
    return value


@pytest.fixture(scope="session")
def kubectl():
    return Kubectl(os.environ.get("KUBECTL", "kubectl"), os.environ.get("KUBECONFIG"))


@pytest.fixture(scope="session")
def jaeger():
    return Jaeger(_required("JAEGER_URL"))


@pytest.fixture(autouse=True)
def print_traces_on_failure(request):
    """A failing test prints, as trees, the traces it fetched by id (the same view as
    e2e/trace): what Jaeger held is usually the quickest way to see what went wrong."""
    if "jaeger" not in request.fixturenames:
        yield
        return
    jaeger = request.getfixturevalue("jaeger")
    jaeger.seen.clear()
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and jaeger.seen:
        trees = "\n\n".join(render(trace) for trace in jaeger.seen.values())
        report.sections.append(("traces this test fetched from Jaeger", trees))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.report_call = outcome.get_result()


def sample_objects():
    return [(path, yaml.safe_load(path.read_text())) for path in SAMPLES]
