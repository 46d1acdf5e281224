"""Fixtures for the end-to-end tests. They run against whatever cluster e2e/test points
them at: the loopback harness of e2e/up, or a kind cluster brought up by `tilt up`."""

import os
from pathlib import Path

import pytest
import yaml

from e2elib.jaeger import Jaeger
from e2elib.kube import Kubectl
from e2elib.trace_report import print_traces_on_failure, pytest_runtest_makereport  # noqa: F401

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


def sample_objects():
    return [(path, yaml.safe_load(path.read_text())) for path in SAMPLES]
