"""Fixtures for the fault tests. They run only against the harness e2e/run --faults starts
(echo-proxy in front of the echo-server, two operator replicas), because they stop, kill and
restart its processes. Every test puts back what it broke, in a `finally`."""

import json
import os

import pytest

from e2elib.jaeger import Jaeger
from e2elib.kube import Kubectl
from e2elib.trace_report import print_traces_on_failure, pytest_runtest_makereport  # noqa: F401
from faults.harness import Harness

GROUP = "echoes.tracing.example.com"


@pytest.fixture(scope="session")
def kubectl():
    return Kubectl(os.environ["KUBECTL"], os.environ["KUBECONFIG"])


@pytest.fixture(scope="session")
def jaeger():
    return Jaeger(os.environ["JAEGER_URL"])


@pytest.fixture(scope="session")
def harness(kubectl):
    if not os.environ.get("E2E_OPERATOR_URLS", "").count(" "):
        pytest.fail("the fault tests need the harness of e2e/run --faults (two operators, echo-proxy)", pytrace=False)
    return Harness(kubectl)


@pytest.fixture
def operators_with(harness):
    """Restarts both replicas with other settings (`env`, extra `args`; `ready=False` does
    not wait for them to be ready); puts back the recorded ones after the test."""
    def restart(env=None, args=(), ready=True):
        harness.restart_operators(env, args, ready)
        harness.leader()

    yield restart
    harness.release_api()
    harness.restart_operators()


@pytest.fixture
def namespace(kubectl):
    """A namespace of the test's own, deleted afterwards with whatever is left in it.

    Each test starts with the operator idle: the objects of earlier tests still being
    deleted would otherwise compete with this test's for reconcile slots, and a test that
    then breaks the echo service would leave them all retrying in front of its own."""
    kubectl.wait_echoes_gone("fault", timeout=180)
    with kubectl.scratch_namespace("fault") as name:
        yield name
        # Deleted here, the Echoes reach the operator at once, not when the namespace
        # controller gets to them some seconds after the namespace's own deletion.
        kubectl.run("delete", GROUP, "--all", "-n", name, "--wait=false", check=False)


def manifest(namespace, name, **spec):
    spec.setdefault("message", f"hello from {name}")
    return json.dumps(
        {
            "apiVersion": "tracing.example.com/v1alpha1",
            "kind": "Echo",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def ready(echo):
    """The Ready condition of an Echo as (status, reason), or None."""
    for condition in ((echo or {}).get("status") or {}).get("conditions") or []:
        if condition["type"] == "Ready":
            return condition["status"], condition["reason"]
    return None


def events_for(kubectl, namespace, name, reason):
    """Events about the object with this reason, oldest first."""
    items = kubectl.json("get", "events.events.k8s.io", "-n", namespace)["items"]
    mine = [e for e in items if e["regarding"]["name"] == name and e["reason"] == reason]
    return sorted(mine, key=lambda e: e.get("eventTime") or e["metadata"]["creationTimestamp"])
