"""Issue 20 on the fault harness, whose operators these tests restart with settings of their
own and whose Jaeger keeps every trace (no tail sampling):

- at `parentbased_linked_traceidratio` 0.1, a change whose KEP-5915 annotation is sampled keeps
  every retry (each is a new root linked to the reconcile before it), and an unsampled one
  leaves nothing behind, whatever the ratio gives the retries' own trace ids;
- an idle resync's reconcile span says what it was: a resync that succeeded, wrote nothing and
  asked the echo service once (the one GET that found the entry right)."""

import json
import secrets
import time

from cluster.test_trace_outcomes import ECHO_ATTEMPTS, FAIL_FIRST, K8S_TRACEPARENT, RESULT, TRIGGER, WRITES
from cluster.test_traces import ECHO, OPERATOR
from e2elib.polling import eventually
from faults.conftest import manifest, ready
from faults.harness import ECHO_ROUTE

RATIO = "0.1"
# The shortest resync the operator accepts.
RESYNC_SECONDS = 10
# A span reaches Jaeger within the batch delay (0.5 s here) and Jaeger's own write.
EXPORT_SECONDS = 5


def annotated(namespace, name, sampled):
    """An Echo whose writes fail FAIL_FIRST times, created with a KEP-5915 traceparent."""
    echo = json.loads(manifest(namespace, name, failFirst=FAIL_FIRST))
    flags = "01" if sampled else "00"
    echo["metadata"]["annotations"] = {K8S_TRACEPARENT: f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{flags}"}
    return json.dumps(echo)


def object_spans(jaeger, namespace, name):
    """Every operator reconcile span and every echo-server PUT span Jaeger holds for the object."""
    path = f"/v1/echoes/{namespace}/{name}"
    ours = {"k8s.object.name": name, "k8s.namespace.name": namespace}
    reconciles = {
        s.span_id: (t, s)
        for t in jaeger.search(OPERATOR, "reconcile Echo", lookback_us=900_000_000, tags=ours)
        for s in t.find(OPERATOR, "reconcile Echo", **ours)
    }
    puts = {
        s.span_id: s
        for t in jaeger.search(ECHO, ECHO_ROUTE, lookback_us=900_000_000, tags={"url.path": path})
        for s in t.find(ECHO, ECHO_ROUTE, kind="server")
    }
    return sorted(reconciles.values(), key=lambda r: r[1].start_us), sorted(puts.values(), key=lambda s: s.start_us)


def test_at_ratio_0_1_a_sampled_change_keeps_every_retry_and_an_unsampled_one_leaves_nothing(
        harness, kubectl, jaeger, namespace, operators_with):
    operators_with(env={"OTEL_TRACES_SAMPLER": "parentbased_linked_traceidratio", "OTEL_TRACES_SAMPLER_ARG": RATIO})
    kubectl.apply(stdin=annotated(namespace, "sampled", sampled=True))
    kubectl.apply(stdin=annotated(namespace, "unsampled", sampled=False))
    for name in ("sampled", "unsampled"):
        kubectl.wait_ready(namespace, name, timeout=120)

    # Sampled: every write the echo service rejected, and the one it took, is in Jaeger, and so
    # is the reconcile that succeeded (the two processes export apart: the echo service's 200
    # can be there a batch before the operator's span of the same reconcile), and each
    # reconcile's root, kube-runtime's span (it ends after the reconcile span, so can come a
    # batch later).
    def whole(found):
        reconciles, puts = found
        codes = [int(s.tags.get("http.response.status_code", 0)) for s in puts]
        return (codes.count(503) >= FAIL_FIRST and 200 in codes and all(RESULT in s.tags for _, s in reconciles)
                and any(s.tags[RESULT] == "success" for _, s in reconciles)
                and all(t.find(OPERATOR, "reconciling object") for t, _ in reconciles))

    reconciles, puts = jaeger.wait_for("every reconcile of the sampled change",
                                       lambda: object_spans(jaeger, namespace, "sampled"), whole)
    codes = [int(s.tags["http.response.status_code"]) for s in puts]
    assert codes[:FAIL_FIRST] == [503] * FAIL_FIRST and codes[FAIL_FIRST] == 200, codes
    results = [s.tags[RESULT] for _, s in reconciles]
    assert results[:3] == ["error", "error", "success"], results
    triggers = [s.tags[TRIGGER] for _, s in reconciles]
    assert triggers[:3] == ["watch_event", "error_retry", "error_retry"], triggers
    # Each retry is a trace of its own whose root, kube-runtime's span, links to the reconcile
    # before it.
    for (before_trace, before), (trace, _) in zip(reconciles, reconciles[1:3]):
        assert trace.trace_id != before_trace.trace_id, "a retry starts a new trace"
        root = trace.one(OPERATOR, "reconciling object")
        assert root.parent_id is None, root
        assert (before_trace.trace_id, before.span_id) in root.links, f"{root} does not link to {before}: {root.links}"

    # Unsampled: nothing, from either process, though it failed and was retried as often.
    assert harness.stored_echo(namespace, "unsampled"), "the unsampled object's echo entry is missing"
    time.sleep(EXPORT_SECONDS)
    reconciles, puts = object_spans(jaeger, namespace, "unsampled")
    assert not reconciles and not puts, f"an unsampled change left spans: {reconciles} {puts}"


def test_an_idle_resync_records_that_it_wrote_nothing(harness, kubectl, jaeger, namespace, operators_with):
    operators_with(args=("--resync-seconds", str(RESYNC_SECONDS)))
    kubectl.apply(stdin=manifest(namespace, "idle"))
    echo = kubectl.wait_ready(namespace, "idle", timeout=60)
    assert ready(echo) == ("True", "Reconciled"), echo["status"]

    def resyncs():
        reconciles, _ = object_spans(jaeger, namespace, "idle")
        return [s for _, s in reconciles if s.tags.get(TRIGGER) == "resync" and RESULT in s.tags]

    spans = jaeger.wait_for("an idle resync's reconcile", resyncs, bool, timeout=RESYNC_SECONDS * 3 + 30)
    tags = spans[0].tags
    assert tags[RESULT] == "success", tags
    assert tags[WRITES] == "none", tags
    assert int(tags[ECHO_ATTEMPTS]) == 1, tags
    assert "error.type" not in tags, tags
    after = eventually("the object after its resync", lambda: kubectl.echo(namespace, "idle"), timeout=10)
    assert after["metadata"]["resourceVersion"] == echo["metadata"]["resourceVersion"], "the resync wrote the object"
