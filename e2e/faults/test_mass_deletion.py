"""Many objects deleted at once, and a namespace deleted with objects in it (the namespace
controller of kube-controller-manager removes them): all are cleaned up in the echo service
and the operator keeps no per-object state for any of them."""

import json

from e2elib.polling import eventually
from faults.conftest import GROUP, manifest

PER_NAMESPACE = 20


def tracked(harness, leader):
    return {
        state: harness.metric(leader, "echo_operator_tracked_objects", state=state)
        for state in ("trace_links", "backoff")
    } | {"pending": harness.metric(leader, "echo_operator_pending_trace_links")}


def test_mass_deletion_leaves_no_state_behind(harness, kubectl, namespace):
    doomed = f"{namespace}-doomed"
    kubectl.run("create", "namespace", doomed)
    try:
        leader = harness.leader()
        before = tracked(harness, leader)
        groups = {namespace: [], doomed: []}
        for ns in groups:
            groups[ns] = [f"many-{i}" for i in range(PER_NAMESPACE)]
            items = [json.loads(manifest(ns, name)) for name in groups[ns]]
            kubectl.apply(stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        for ns, names in groups.items():
            for name in names:
                kubectl.wait_ready(ns, name)
        during = tracked(harness, leader)
        assert during["trace_links"] >= 2 * PER_NAMESPACE, (before, during)

        kubectl.run("delete", GROUP, "--all", "-n", namespace, "--wait=false")
        kubectl.run("delete", "namespace", doomed, "--wait=false")
        for ns, names in groups.items():
            for name in names:
                kubectl.wait_gone(ns, name, timeout=120)
        eventually("the namespace gone", lambda: kubectl.run("get", "namespace", doomed, check=False).returncode != 0,
                   timeout=120)

        for ns, names in groups.items():
            left = [n for n in names if harness.stored_echo(ns, n) is not None]
            assert not left, f"left behind in the echo service: {ns}/{left}"
        # Objects of earlier tests may still be going away; none of these 40 may stay.
        eventually(
            "per-object state released",
            lambda: all(v <= before[k] for k, v in tracked(harness, leader).items()),
            timeout=30,
        )
    finally:
        kubectl.run("delete", "namespace", doomed, "--wait=false", check=False)
