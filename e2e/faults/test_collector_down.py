"""The collector (Jaeger) stopped while the operator works, then started again: reconciles
are not slowed, memory stays bounded, the spans that could not be delivered are counted,
and traces arrive again once it is back."""

import json
import time

from e2elib.polling import eventually
from faults.conftest import manifest

OBJECTS = 10
SPANS = "echo_operator_otel_spans_{}_total"


def create_all(kubectl, harness, namespace, prefix):
    """Creates OBJECTS Echoes in one request and returns seconds until all are Ready."""
    items = [json.loads(manifest(namespace, f"{prefix}-{i}")) for i in range(OBJECTS)]
    started = time.monotonic()
    kubectl.apply(stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    for i in range(OBJECTS):
        kubectl.wait_ready(namespace, f"{prefix}-{i}", timeout=60)
    return time.monotonic() - started


def spans(harness, leader, what):
    return harness.metric(leader, SPANS.format(what))


def test_reconciles_go_on_without_the_collector_and_traces_return_with_it(harness, kubectl, jaeger, namespace):
    leader = harness.leader()
    with_collector = create_all(kubectl, harness, namespace, "before")
    failed_before = spans(harness, leader, "export_failed")
    rss_before = harness.rss_kib(leader)

    harness.proc("stop", "jaeger")
    try:
        without_collector = create_all(kubectl, harness, namespace, "during")
        assert without_collector <= with_collector * 1.5 + 2, (
            f"{OBJECTS} objects took {without_collector:.1f}s without the collector, {with_collector:.1f}s with it"
        )
        # Keep the operator busy for a while: each change is a reconcile whose spans cannot leave.
        for round_ in range(3):
            for i in range(OBJECTS):
                kubectl.run("patch", "echo", f"during-{i}", "-n", namespace, "--type", "merge",
                            "-p", json.dumps({"spec": {"message": f"round {round_}"}}))
        for i in range(OBJECTS):
            eventually(f"during-{i} reconciled",
                       lambda i=i: kubectl.echo(namespace, f"during-{i}")["status"].get("observedGeneration") == 4,
                       timeout=60)
        eventually("failed exports counted", lambda: spans(harness, leader, "export_failed") > failed_before,
                   timeout=30)
        grown = harness.rss_kib(leader) - rss_before
        assert grown < 30 * 1024, f"the operator grew by {grown} KiB while the collector was down"
    finally:
        harness.proc("start", "jaeger")
    eventually("Jaeger back", lambda: jaeger.services() is not None, timeout=60)

    exported = spans(harness, leader, "exported")
    kubectl.apply(stdin=manifest(namespace, "after"))
    echo = kubectl.wait_ready(namespace, "after")
    trace = jaeger.wait_for_trace(
        echo["status"]["traceId"], "a trace after the collector returned",
        lambda t: t.find("echo-operator", "reconcile Echo") and t.find("echo-server", kind="server"),
        timeout=60,
    )
    assert trace.one("echo-operator", kind="consumer").tags["k8s.object.name"] == "after"
    assert spans(harness, leader, "exported") > exported
