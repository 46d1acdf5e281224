"""deploy/20-echo-server.yaml's NetworkPolicy, enforced: only the operator reaches the echo
service's API port; its metrics port is open to anyone. Only a network plugin that implements
NetworkPolicy can pass this (kind's kindnet does, on a kernel with nftables' queue), so
it runs where the runner says the policy is enforced (E2E_NETWORK_POLICY=enforced, from
e2e/kind/run), and is skipped elsewhere with the runner's reason (E2E_NETWORK_POLICY holds it)."""

import json
import os
import uuid

import pytest

from e2elib.polling import eventually

NAMESPACE = "echo-tracing"
API_PORT, METRICS_PORT = 8080, 9090
# An image with bash (for /dev/tcp) that a kind node has or can pull; e2e/kind/run loads its
# stand-in into the node.
PROBE_IMAGE = os.environ.get("E2E_PROBE_IMAGE", "debian:trixie-slim")

POLICY = os.environ.get("E2E_NETWORK_POLICY", "")
pytestmark = pytest.mark.skipif(
    POLICY != "enforced",
    reason="SKIPPED: NetworkPolicy is not enforced on this cluster: "
    + (POLICY or "only a network plugin that implements it enforces it (kind's kindnet, which e2e/kind/run checks)"),
)


def echo_server_ip(kubectl):
    pods = kubectl.json("get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=echo-server")["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running" and p["status"].get("podIP")]
    assert running, "no running echo-server pod"
    return running[0]["status"]["podIP"]


def probe(kubectl, namespace, ip):
    """From a pod that is not the operator: {port: "open" | "closed"} for both ports."""
    name = f"probe-{uuid.uuid4().hex[:6]}"
    script = "; ".join(
        f"if timeout 3 bash -c '</dev/tcp/{ip}/{port}'; then echo {port}=open; else echo {port}=closed; fi"
        for port in (API_PORT, METRICS_PORT)
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "netpol-probe"}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "probe",
                "image": PROBE_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["bash", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }
    kubectl.run("apply", "-f", "-", stdin=json.dumps(pod))
    phase = eventually(
        f"probe pod {name} to finish",
        lambda: kubectl.json("get", "pod", name, "-n", namespace)["status"].get("phase"),
        until=lambda p: p in ("Succeeded", "Failed"),
        timeout=90,
        interval=1,
    )
    logs = kubectl.run("logs", name, "-n", namespace).stdout
    assert phase == "Succeeded", f"probe pod {name}: {phase}: {logs}"
    return {int(k): v for k, v in (line.split("=") for line in logs.split())}


@pytest.fixture
def stranger_namespace(kubectl):
    with kubectl.scratch_namespace("netpol") as name:
        yield name


def test_only_the_operator_reaches_the_echo_api_and_anyone_its_metrics(kubectl, stranger_namespace):
    ip = echo_server_ip(kubectl)
    assert probe(kubectl, stranger_namespace, ip) == {API_PORT: "closed", METRICS_PORT: "open"}


def test_the_policy_is_what_closes_the_api_port(kubectl, stranger_namespace):
    """Without the NetworkPolicy the same probe reaches the API port: what closed it was the
    policy, not the network. The policy is put back as deploy/ has it."""
    ip = echo_server_ip(kubectl)
    policy = kubectl.json("get", "networkpolicy", "echo-server", "-n", NAMESPACE)
    kubectl.run("delete", "networkpolicy", "echo-server", "-n", NAMESPACE)
    try:
        opened = eventually(
            "the API port open without the policy",
            lambda: probe(kubectl, stranger_namespace, ip),
            until=lambda ports: ports[API_PORT] == "open",
            timeout=60,
            interval=1,
        )
        assert opened == {API_PORT: "open", METRICS_PORT: "open"}
    finally:
        for field in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
            policy["metadata"].pop(field, None)
        policy.pop("status", None)
        kubectl.run("apply", "-f", "-", stdin=json.dumps(policy))
    eventually(
        "the API port closed again with the policy back",
        lambda: probe(kubectl, stranger_namespace, ip),
        until=lambda ports: ports[API_PORT] == "closed",
        timeout=60,
        interval=1,
    )
