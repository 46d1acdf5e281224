"""The echo service unreachable (echo-proxy stopped: the port is closed, connections are
refused) while objects are created, updated and deleted. The echo-server behind the proxy
keeps its state, so what it holds afterwards is what the operator did."""

import re
import time
from datetime import datetime

from e2elib.polling import eventually
from faults.conftest import GROUP, events_for, manifest, ready

# e2e/up runs the operators with ERROR_BACKOFF_SECONDS=1 and MAX_ERROR_BACKOFF_SECONDS=10.
MAX_BACKOFF = 10
# One reconcile against a closed port: 4 refused attempts 0.1–2 s apart.
RECONCILE = 4


def event_time(event):
    stamp = event.get("eventTime") or event["metadata"]["creationTimestamp"]
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def wait_condition(kubectl, namespace, name, want, generation=None, timeout=60):
    def reached(echo):
        status = (echo or {}).get("status") or {}
        return ready(echo) == want and (generation is None or status.get("observedGeneration") == generation)

    # The whole object is the last value, so a timeout shows the status it stopped at.
    return eventually(f"{namespace}/{name} {want}", lambda: kubectl.echo(namespace, name), until=reached,
                      timeout=timeout)


def echo_down(harness):
    harness.proc("stop", "echo-proxy")


def echo_back(harness):
    harness.proc("start", "echo-proxy")
    eventually("echo-proxy listening", lambda: harness.pid("echo-proxy"), timeout=10)
    time.sleep(0.5)  # the proxy binds right after it starts


def test_down_during_create_retries_with_growing_backoff_and_recovers(harness, kubectl, namespace):
    echo_down(harness)
    try:
        kubectl.apply(stdin=manifest(namespace, "created"))
        echo = wait_condition(kubectl, namespace, "created", ("False", "EchoUnreachable"))
        assert "observedGeneration" not in echo["status"], "nothing was reconciled successfully yet"
        time.sleep(14)  # let the backoff grow: retries after about 1, 2, 4, 8 s
        warnings = events_for(kubectl, namespace, "created", "EchoUnreachable")
        assert all(e["type"] == "Warning" for e in warnings)
        times = [event_time(e) for e in warnings]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # No hot loop: a handful of reconciles in 14 s, each gap longer than the one before.
        assert 3 <= len(warnings) <= 7, f"{len(warnings)} reconciles in 14 s, gaps {gaps}"
        assert all(later > earlier for earlier, later in zip(gaps, gaps[1:])), f"backoff does not grow: {gaps}"
    finally:
        echo_back(harness)
    returned = time.monotonic()
    echo = wait_condition(kubectl, namespace, "created", ("True", "Reconciled"), generation=1)
    assert time.monotonic() - returned <= MAX_BACKOFF + RECONCILE, "recovered within one backoff period"
    stored = harness.stored_echo(namespace, "created")
    assert stored["message"] == "hello from created"
    assert stored["traceId"] == echo["status"]["traceId"], "the echo-server stored the successful reconcile"


def test_down_during_update_keeps_the_old_generation_until_it_returns(harness, kubectl, namespace):
    kubectl.apply(stdin=manifest(namespace, "updated"))
    wait_condition(kubectl, namespace, "updated", ("True", "Reconciled"), generation=1)
    echo_down(harness)
    try:
        kubectl.apply(stdin=manifest(namespace, "updated", message="second version"))
        echo = wait_condition(kubectl, namespace, "updated", ("False", "EchoUnreachable"))
        assert echo["metadata"]["generation"] == 2 and echo["status"]["observedGeneration"] == 1
        assert harness.stored_echo(namespace, "updated")["message"] == "hello from updated"
    finally:
        echo_back(harness)
    wait_condition(kubectl, namespace, "updated", ("True", "Reconciled"), generation=2,
                   timeout=MAX_BACKOFF + RECONCILE)
    assert harness.stored_echo(namespace, "updated")["message"] == "second version"


def test_down_during_delete_holds_the_finalizer_until_cleanup_is_done(harness, kubectl, jaeger, namespace):
    """The documented choice: deletion waits for the echo service (the finalizer stays), so
    nothing is left behind in it; the skip-cleanup annotation lets an object go at once."""
    for name in ("deleted", "abandoned"):
        kubectl.apply(stdin=manifest(namespace, name))
        wait_condition(kubectl, namespace, name, ("True", "Reconciled"), generation=1)
    echo_down(harness)
    try:
        for name in ("deleted", "abandoned"):
            kubectl.run("delete", GROUP, name, "-n", namespace, "--wait=false")
        wait_condition(kubectl, namespace, "deleted", ("False", "EchoUnreachable"))
        time.sleep(3)
        echo = kubectl.echo(namespace, "deleted")
        assert echo["metadata"]["deletionTimestamp"] and echo["metadata"]["finalizers"], echo["metadata"]
        assert events_for(kubectl, namespace, "deleted", "EchoUnreachable"), "a Warning Event says why"

        # The escape for an echo service that is gone for good.
        kubectl.run("annotate", GROUP, "abandoned", "-n", namespace, "tracing.example.com/skip-cleanup=true")
        kubectl.wait_gone(namespace, "abandoned", timeout=15)
        assert harness.stored_echo(namespace, "abandoned") is not None, "skipping cleanup leaves the remote copy"
        # The annotation itself woke the operator: the deletion's trace starts at its watch
        # event. A backoff retry (which would also see the annotation, seconds later) starts
        # with kube-runtime's span instead, so this fails if the change filter ignored it.
        (deleted,) = events_for(kubectl, namespace, "abandoned", "Deleted")
        trace_id = re.search(r"\(trace ([0-9a-f]{32})\)", deleted["note"]).group(1)
        trace = jaeger.wait_for_trace(trace_id, "the skipped cleanup's trace",
                                      lambda t: t.find(name="reconcile Echo"))
        roots = [span for span in trace.spans if span.parent_id is None]
        assert [span.name for span in roots] == ["watch Echo Apply"], trace
    finally:
        echo_back(harness)
    kubectl.wait_gone(namespace, "deleted", timeout=MAX_BACKOFF + RECONCILE)
    assert harness.stored_echo(namespace, "deleted") is None, "cleaned up in the echo service once it returned"
