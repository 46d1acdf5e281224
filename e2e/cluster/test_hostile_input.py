"""Hostile input on the real API server, reconciled by the real operator: the longest
message and names the schema allows, and traceparent annotations that must be refused.
Each gets a clear answer, and nothing is lost."""

import json
import re
import secrets

import pytest

GROUP = "echoes.tracing.example.com"
TRACEPARENT_ANNOTATION = "tracing.example.com/traceparent"
SPAN = "b7ad6b7169203331"


def manifest(namespace, name, spec, annotations=None):
    metadata = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return json.dumps(
        {"apiVersion": "tracing.example.com/v1alpha1", "kind": "Echo", "metadata": metadata, "spec": spec}
    )


def reconciled_note(kubectl, namespace, name):
    events = kubectl.json("get", "events.events.k8s.io", "-n", namespace)["items"]
    notes = [e["note"] for e in events if e["regarding"]["name"] == name and e["reason"] == "Reconciled"]
    assert notes, f"no Reconciled Event for {namespace}/{name}"
    return notes[-1]


@pytest.fixture
def cleanup(kubectl):
    made = []
    yield made
    for kind, namespace, name in reversed(made):
        args = ["delete", kind, name, "--wait=false"] + (["-n", namespace] if namespace else [])
        kubectl.run(*args, check=False)


def test_a_message_of_1024_multibyte_characters_round_trips(kubectl, cleanup):
    message = "€" * 1024  # 3 bytes each: 3 KiB, the schema counts characters
    name = f"multibyte-{secrets.token_hex(3)}"
    kubectl.apply(stdin=manifest("default", name, {"message": message}))
    cleanup.append((GROUP, "default", name))
    echo = kubectl.wait_ready("default", name)
    assert echo["status"]["reply"] == f"echo: {message}"
    # The Event's note is cut to the API server's 1 KiB, never the trace id at its end.
    note = reconciled_note(kubectl, "default", name)
    assert note.endswith(f"(trace {echo['status']['traceId']})"), note
    assert len(note.encode()) <= 1024

    refused = kubectl.run("apply", "--dry-run=server", "-f", "-",
                          stdin=manifest("default", name, {"message": "€" * 1025}), check=False)
    assert refused.returncode != 0 and "spec.message" in refused.stderr, refused.stderr


def test_names_at_the_length_limits_reconcile(kubectl, cleanup):
    namespace = f"ns-{secrets.token_hex(4)}".ljust(63, "n")  # a DNS label: at most 63
    name = ("e" * 62 + ".") * 4  # a DNS subdomain: at most 253
    name = name[:252] + "z"
    assert len(namespace) == 63 and len(name) == 253
    kubectl.run("create", "namespace", namespace)
    cleanup.append(("namespace", None, namespace))
    kubectl.apply(stdin=manifest(namespace, name, {"message": "long names"}))
    echo = kubectl.wait_ready(namespace, name)
    assert echo["status"]["reply"] == "echo: long names"
    assert echo["status"]["traceId"] in reconciled_note(kubectl, namespace, name), "an Event despite the long name"

    too_long = kubectl.run("apply", "--dry-run=server", "-f", "-",
                           stdin=manifest(namespace, name + "z", {"message": "x"}), check=False)
    assert too_long.returncode != 0 and "253" in too_long.stderr, too_long.stderr
    kubectl.run("delete", GROUP, name, "-n", namespace, "--wait=false")
    kubectl.wait_gone(namespace, name)


@pytest.mark.parametrize(
    "value",
    [
        "not-a-traceparent",
        "00-" + "a" * 65536 + "-" + SPAN + "-01",  # 64 KiB
        "ff-{trace}-" + SPAN + "-01",  # version ff is forbidden
        "00-" + "0" * 32 + "-" + SPAN + "-01",  # the all-zero trace id is invalid
        "00-{trace}-" + SPAN + "-01\n00-{trace}-" + SPAN + "-01",  # two lines
    ],
    ids=["malformed", "64KiB", "version-ff", "zero-trace-id", "multi-line"],
)
def test_an_invalid_traceparent_annotation_is_ignored(kubectl, jaeger, cleanup, value):
    wanted = secrets.token_hex(16)
    name = f"annotated-{secrets.token_hex(3)}"
    kubectl.apply(stdin=manifest("default", name, {"message": "m"},
                                 {TRACEPARENT_ANNOTATION: value.format(trace=wanted)}))
    cleanup.append((GROUP, "default", name))
    echo = kubectl.wait_ready("default", name)
    trace_id = echo["status"]["traceId"]
    assert re.fullmatch("[0-9a-f]{32}", trace_id) and set(trace_id) != {"0"}, trace_id
    assert trace_id != wanted, "an invalid traceparent must not choose the trace"
    trace = jaeger.wait_for_trace(trace_id, "the reconcile of an object with a refused traceparent",
                                  lambda t: t.find("echo-operator", kind="consumer"))
    watch = trace.one("echo-operator", kind="consumer")
    assert watch.parent_id is None, "the watch event starts its own trace"
