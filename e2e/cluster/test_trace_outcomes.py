"""Issue 20 on the real system, through kubectl and Jaeger's query API only (so these run on
the loopback harness and kind alike): the KEP-5915 annotation gives a linked root,
the reconcile span carries its outcome, and the operator's Events carry the reconcile's W3C
context."""

import json
import re
import secrets

import pytest
import yaml

from cluster.test_traces import OPERATOR, echo_calls
from e2elib.polling import eventually

K8S_TRACEPARENT = "tracing.k8s.io/traceparent"
ECHOES = "echoes.tracing.example.com"
RESULT = "echo_operator.reconcile.result"
TRIGGER = "echo_operator.reconcile.trigger"
WRITES = "echo_operator.reconcile.writes"
ECHO_ATTEMPTS = "echo_operator.reconcile.echo_attempts"
READY_REASON = "echo_operator.reconcile.ready_reason"
# More 503s than one reconcile's attempts (1 + 3 retries by default, and in every harness).
FAIL_FIRST = 10


def manifest(name, annotations=None, **spec):
    return {
        "apiVersion": "tracing.example.com/v1alpha1",
        "kind": "Echo",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations or {}},
        "spec": {"message": f"outcome test {name}", **spec},
    }


@pytest.fixture
def created(kubectl):
    """Applies Echo objects and deletes whatever the test left behind."""
    names = []

    def apply(name, annotations=None, **spec):
        names.append(name)
        kubectl.apply(stdin=yaml.safe_dump(manifest(name, annotations, **spec)))

    yield apply
    for name in names:
        kubectl.run("delete", ECHOES, name, "-n", "default", "--ignore-not-found", "--wait=true")


def ended_reconcile(trace):
    """The trace's one `reconcile Echo` span, once it has ended (its outcome is recorded at
    the end) and every echo call in it has its response."""
    spans = trace.find(OPERATOR, "reconcile Echo")
    calls = echo_calls(trace, "PUT") + echo_calls(trace, "DELETE")
    if len(spans) != 1 or RESULT not in spans[0].tags:
        return None
    if not all(c.tags.get("http.response.status_code") for c in calls):
        return None
    return spans[0]


def reconcile_of(jaeger, trace_id, what):
    trace = jaeger.wait_for_trace(trace_id, what, ended_reconcile)
    return trace, ended_reconcile(trace)


def writes(span):
    return set(str(span.tags[WRITES]).split(","))


def test_kep_annotation_makes_the_watch_event_a_root_linked_to_it(kubectl, jaeger, created):
    """KEP-5915: a valid tracing.k8s.io/traceparent on a new generation gives a watch-event
    span that starts its own trace (no parent) and links to the annotation's span."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    name = f"kep-{secrets.token_hex(3)}"
    created(name, {K8S_TRACEPARENT: f"00-{trace_id}-{span_id}-01"})
    echo = kubectl.wait_ready("default", name)
    assert echo["status"]["traceId"] != trace_id, "a link, not a parent: the reconcile starts a new trace"

    def linked(trace):
        watches = trace.find(OPERATOR, kind="consumer")
        return len(watches) == 1 and ended_reconcile(trace) is not None

    trace = jaeger.wait_for_trace(echo["status"]["traceId"], f"the reconcile trace of {name}", linked)
    watch = trace.one(OPERATOR, kind="consumer")
    assert watch.name == "watch Echo Apply", watch
    assert watch.tags["k8s.object.name"] == name
    assert watch.parent_id is None, f"the watch event is a root, its parent is {watch.parent_id}"
    assert (trace_id, span_id) in watch.links, f"no link to the annotation's span: {watch.links}"


def test_a_created_objects_reconcile_records_success_and_what_it_wrote(kubectl, jaeger, created):
    name = f"ok-{secrets.token_hex(3)}"
    created(name)
    echo = kubectl.wait_ready("default", name)
    trace, reconcile = reconcile_of(jaeger, echo["status"]["traceId"], f"the reconcile of {name}")
    tags = reconcile.tags
    assert tags[RESULT] == "success", tags
    assert tags[TRIGGER] == "watch_event", tags
    assert {"echo", "status", "event"} <= writes(reconcile), tags
    assert int(tags[ECHO_ATTEMPTS]) >= 1, tags
    assert int(tags[ECHO_ATTEMPTS]) == len(echo_calls(trace, "PUT")), tags
    assert tags[READY_REASON] == "Reconciled", tags
    assert "error.type" not in tags, tags


def test_a_reconcile_whose_echo_call_fails_records_the_error(kubectl, jaeger, created):
    """failFirst past the retry budget: the first reconcile gives up with every attempt a
    503, and its span says so; a later reconcile succeeds."""
    name = f"failing-{secrets.token_hex(3)}"
    created(name, failFirst=FAIL_FIRST)

    def failed(echo):
        ready = [c for c in ((echo or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
        return bool(ready) and ready[0]["status"] == "False" and echo["status"].get("traceId")

    echo = eventually("the first failed reconcile", lambda: kubectl.echo("default", name), until=failed,
                      timeout=60, interval=0.5)
    trace, reconcile = reconcile_of(jaeger, echo["status"]["traceId"], f"the failed reconcile of {name}")
    tags = reconcile.tags
    assert tags[RESULT] == "error", tags
    assert tags.get("otel.status_code") == "ERROR", tags
    reason = [c for c in echo["status"]["conditions"] if c["type"] == "Ready"][0]["reason"]
    assert tags["error.type"] == reason == "EchoFailing", tags
    assert tags[READY_REASON] == reason, tags
    calls = echo_calls(trace, "PUT")
    assert [int(c.tags["http.response.status_code"]) for c in calls] == [503] * len(calls), calls
    assert int(tags[ECHO_ATTEMPTS]) == len(calls) >= 2, tags
    assert "echo" not in writes(reconcile), "a failed echo call wrote no echo entry"
    kubectl.wait_ready("default", name, timeout=120)


def test_a_deleted_objects_last_reconcile_removes_the_finalizer(kubectl, jaeger, created):
    name = f"deleted-{secrets.token_hex(3)}"
    created(name)
    kubectl.wait_ready("default", name)
    kubectl.run("delete", ECHOES, name, "-n", "default", "--wait=true")
    kubectl.wait_gone("default", name)

    def cleanup():
        found = [
            s
            for t in jaeger.search(OPERATOR, "reconcile Echo", tags={"k8s.object.name": name})
            for s in t.find(OPERATOR, "reconcile Echo", **{"k8s.object.name": name})
            if str(s.tags.get("deleting")).lower() == "true" and RESULT in s.tags
        ]
        return [s for s in found if "finalizer" in writes(s)]

    spans = jaeger.wait_for(f"the cleanup reconcile of {name}", cleanup, bool)
    tags = spans[-1].tags
    assert tags[RESULT] == "success", tags
    assert {"finalizer", "echo"} <= writes(spans[-1]), tags
    assert int(tags[ECHO_ATTEMPTS]) >= 1, tags


def test_the_event_carries_the_reconciles_traceparent(kubectl, jaeger, created):
    """The Reconciled Event's tracing.k8s.io/traceparent names the object's trace and the
    span of the reconcile that published it."""
    name = f"event-{secrets.token_hex(3)}"
    created(name)
    echo = kubectl.wait_ready("default", name)
    trace_id = echo["status"]["traceId"]

    def reconciled_events():
        events = kubectl.json("get", "events.events.k8s.io", "-n", "default")["items"]
        return [e for e in events if e["regarding"]["name"] == name and e["reason"] == "Reconciled"]

    events = eventually(f"the Reconciled Event of {name}", reconciled_events, until=bool, timeout=30)
    annotations = [(e["metadata"].get("annotations") or {}).get(K8S_TRACEPARENT) for e in events]
    assert all(annotations), json.dumps(events, indent=1)
    match = re.fullmatch("00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]", annotations[-1])
    assert match, annotations
    assert match.group(1) == trace_id, (annotations, trace_id)
    _, reconcile = reconcile_of(jaeger, trace_id, f"the reconcile of {name}")
    assert match.group(2) == reconcile.span_id, "the Event's context is the reconcile span's"

