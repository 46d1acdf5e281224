"""The mission, checked for real: every sample in deploy/samples reconciles into ONE trace
that crosses from the operator into the echo-server and down into the API server, and its
deletion into a cleanup trace. Tests in this module run in order."""

import json
import os
import re
import secrets
import subprocess
import time
from typing import NamedTuple

import pytest
import yaml

from cluster.conftest import API_SERVER, ROOT, sample_objects
from e2elib.polling import eventually

OPERATOR = "echo-operator"
ECHO = "echo-server"
ECHO_ROUTE = "/v1/echoes/{namespace}/{name}"
ECHOES_API = "/apis/tracing.example.com/v1alpha1/namespaces/{namespace}/echoes/{name}"
TRACEPARENT_ANNOTATION = "tracing.example.com/traceparent"
SAMPLES = {obj["metadata"]["name"]: (path, obj) for path, obj in sample_objects()}


class Flow(NamedTuple):
    """What one kind of reconcile does: its call to the echo service, the echo service's
    internal span, and the operator step that then writes to the API server."""

    method: str
    internal: str
    step: str
    route: str


RECONCILE = Flow("PUT", "store write", "write status", ECHOES_API + "/status")
CLEANUP = Flow("DELETE", "store delete", "remove finalizer", ECHOES_API)


def echo_calls(trace, method):
    """The operator's client spans to the echo service (not to the API server), in order."""
    calls = [
        s
        for s in trace.find(OPERATOR, kind="client", **{"http.request.method": method})
        if "/apis/" not in s.tags.get("url.full", "")
    ]
    return sorted(calls, key=lambda s: s.start_us)


def api_patch(trace, step, route):
    """The one PATCH the operator sent to the API server inside `step`, or None."""
    patches = [s for s in trace.children(step) if s.kind == "client" and s.name == f"PATCH {route}"]
    return patches[0] if len(patches) == 1 else None


def complete(trace, flow):
    """Whether every span the assertions need has reached Jaeger (they arrive in batches, and
    a parent ends, so is exported, after its children: every parent must be there too, but
    the watch event's, which may be the applier's span in another process). The echo-server
    exports apart, so a SERVER span for every attempt too: its last, the one that succeeded,
    can come a batch after those of the attempts before it."""
    steps = trace.find(OPERATOR, flow.step)
    calls = echo_calls(trace, flow.method)
    return (
        all(s.parent_id is None or s.parent_id in trace.by_id or s.kind == "consumer" for s in trace.spans)
        and trace.find(ECHO, flow.internal)
        and len(steps) == 1
        and api_patch(trace, steps[0], flow.route)
        and all(s.tags.get("http.response.status_code") for s in calls)
        and len(trace.find(ECHO, f"{flow.method} {ECHO_ROUTE}", kind="server")) >= len(calls)
    )


def assert_api_server_linked(jaeger, trace, patch, route):
    """The API server's own spans for the operator's PATCH. It continues a traceparent only
    from system:masters and system:monitoring; for the operator's least-privilege
    ServiceAccount it starts a trace that links to the operator's span (see
    deploy/kind/apiserver-tracing.yaml). Finds that trace and checks the link."""
    operation = "PATCH " + route.replace("{namespace}", "{:namespace}").replace("{name}", "{:name}")

    found = jaeger.wait_for(
        f"an API server span linked to {patch}",
        lambda: jaeger.linked_spans(API_SERVER, operation, trace.trace_id, patch.span_id),
        bool,
    )
    assert len(found) == 1, found
    api_trace, server = found[0]
    assert server.parent_id is None, "the API server starts its own trace for an unprivileged caller"
    # Kubernetes 1.37 records the current semantic convention; older API servers the old name.
    status = server.tags.get("http.response.status_code", server.tags.get("http.status_code"))
    assert int(status) == 200, server.tags
    assert api_trace.children(server), "the API server records its work below the request span"


def assert_reconcile_chain(jaeger, trace, namespace, name, flow):
    """watch event -> reconciling object -> reconcile -> CLIENT -> SERVER -> echo internal
    span, and reconcile -> step -> PATCH ~> API server. Returns (watch, client spans)."""
    assert {OPERATOR, ECHO} <= trace.services, trace

    watch = trace.one(OPERATOR, kind="consumer")
    assert watch.name == "watch Echo Apply"
    assert watch.tags["k8s.object.name"] == name
    assert watch.tags["k8s.namespace.name"] == namespace
    assert watch.tags["k8s.watch.event_type"] == "Apply"
    runtime = trace.one(OPERATOR, "reconciling object")
    trace.assert_parent(runtime, watch)
    reconcile = trace.one(OPERATOR, "reconcile Echo")
    trace.assert_parent(reconcile, runtime)
    assert reconcile.tags["trace_id"] == trace.trace_id

    method = flow.method
    calls = echo_calls(trace, method)
    assert calls, f"no {method} to the echo service in {trace}"
    for call in calls:
        trace.assert_parent(call, reconcile)
        assert call.tags["url.full"].endswith(f"/v1/echoes/{namespace}/{name}")
    servers = trace.find(ECHO, f"{method} {ECHO_ROUTE}", kind="server")
    assert len(servers) == len(calls), f"one server span per client attempt: {calls} vs {servers}"
    for call, server in zip(calls, sorted(servers, key=lambda s: s.start_us)):
        trace.assert_parent(server, call)
        assert server.tags["http.route"] == ECHO_ROUTE
        assert server.tags["http.request.method"] == method
        assert server.tags["url.path"] == f"/v1/echoes/{namespace}/{name}"
        assert server.tags["http.response.status_code"] == call.tags["http.response.status_code"]
        # The store counts failFirst attempts too: each attempt has its internal span.
        assert [c.name for c in trace.children(server)] == [flow.internal], trace.children(server)
    succeeded = [s for s in servers if int(s.tags["http.response.status_code"]) < 300]
    assert len(succeeded) == 1, servers

    step = trace.one(OPERATOR, flow.step)
    trace.assert_parent(step, reconcile)
    patch = api_patch(trace, step, flow.route)
    assert patch is not None, f"one PATCH {flow.route} under {step} in {trace}"
    assert int(patch.tags["http.response.status_code"]) == 200
    assert_api_server_linked(jaeger, trace, patch, flow.route)
    return watch, calls


@pytest.fixture(scope="module")
def samples(kubectl):
    """Applies every sample fresh (each gets a new watch event) and waits for Ready."""
    paths = [path for path, _ in SAMPLES.values()]
    files = [arg for path in paths for arg in ("-f", str(path))]
    kubectl.run("delete", *files, "--ignore-not-found", "--wait=true")
    kubectl.apply(*paths)
    return {name: kubectl.wait_ready(obj["metadata"]["namespace"], name) for name, (_, obj) in SAMPLES.items()}


def reconcile_trace(jaeger, echo):
    """The trace named by the object's status.traceId, once all of it is in Jaeger."""
    trace_id = echo["status"]["traceId"]
    assert re.fullmatch("[0-9a-f]{32}", trace_id), trace_id
    what = f"the reconcile trace of {echo['metadata']['namespace']}/{echo['metadata']['name']}"
    return jaeger.wait_for_trace(trace_id, what, lambda t: complete(t, RECONCILE))


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_reconciles_into_one_cross_process_trace(samples, jaeger, name):
    echo = samples[name]
    namespace = echo["metadata"]["namespace"]
    trace = reconcile_trace(jaeger, echo)
    watch, calls = assert_reconcile_chain(jaeger, trace, namespace, name, RECONCILE)
    assert watch.parent_id is None, "without the annotation the watch event starts the trace"
    assert str(watch.tags["k8s.object.generation"]) == str(echo["metadata"]["generation"])

    status = echo["status"]
    assert status["reply"] == f"echo: {echo['spec']['message']}"
    assert status["observedGeneration"] == echo["metadata"]["generation"]
    assert "tracing.example.com/echo-cleanup" in echo["metadata"]["finalizers"]

    fail_first = echo["spec"].get("failFirst", 0)
    codes = [int(c.tags["http.response.status_code"]) for c in calls]
    assert codes == [503] * fail_first + [200], "failFirst retries stay inside the one trace"

    delay_ms = echo["spec"].get("delayMs", 0)
    server = trace.find(ECHO, f"PUT {ECHO_ROUTE}", kind="server", **{"http.response.status_code": 200})[0]
    assert server.duration_us >= delay_ms * 1000


def test_the_trace_command_prints_a_samples_trace_as_a_tree(samples, kubectl, jaeger):
    """e2e/trace --echo, as a person would run it: kubectl finds the trace id, Jaeger the
    spans; the tree shows the operator's CLIENT call with the echo-server's SERVER span below."""
    echo = samples["hello"]
    reconcile_trace(jaeger, echo)  # all of it is in Jaeger
    env = dict(os.environ, KUBECTL=kubectl.base[0])
    result = subprocess.run(
        [str(ROOT / "e2e" / "trace"), "--echo", "hello", "-n", echo["metadata"]["namespace"], "--jaeger", jaeger.url],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"trace {echo['status']['traceId']}:"), lines[0]
    client = next(i for i, line in enumerate(lines) if line.startswith(OPERATOR) and f"PUT {ECHO_ROUTE}" in line)
    server = lines[client + 1]
    assert "CLIENT" in lines[client] and server.startswith(ECHO) and "SERVER" in server, result.stdout
    assert server.index("PUT") > lines[client].index("PUT"), "the SERVER span is drawn below its CLIENT span"
    assert any("reconcile Echo" in line and "INTERNAL" in line for line in lines), result.stdout


@pytest.mark.parametrize("name", SAMPLES)
def test_the_event_names_the_trace(samples, kubectl, name):
    echo = samples[name]
    events = kubectl.json("get", "events.events.k8s.io", "-n", echo["metadata"]["namespace"])["items"]
    mine = [e for e in events if e["regarding"]["name"] == name and e["reason"] == "Reconciled"]
    assert any(echo["status"]["traceId"] in e["note"] for e in mine), json.dumps(mine, indent=1)


def test_traceparent_annotation_continues_the_appliers_trace(kubectl, jaeger):
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    name = f"annotated-{secrets.token_hex(3)}"
    manifest = {
        "apiVersion": "tracing.example.com/v1alpha1",
        "kind": "Echo",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {TRACEPARENT_ANNOTATION: f"00-{trace_id}-{parent}-01"},
        },
        "spec": {"message": "started by the test"},
    }
    kubectl.apply(stdin=yaml.safe_dump(manifest))
    try:
        echo = kubectl.wait_ready("default", name)
        assert echo["status"]["traceId"] == trace_id
        trace = reconcile_trace(jaeger, echo)
        watch, _ = assert_reconcile_chain(jaeger, trace, "default", name, RECONCILE)
        assert watch.parent_id == parent, "the watch event is the child of the annotation's span"
    finally:
        kubectl.run("delete", "echoes.tracing.example.com", name, "-n", "default", "--wait=true")


def test_a_second_reconcile_names_its_own_trace_and_leaves_others_conditions(kubectl):
    """Two reconciles within minutes: the newest Reconciled Event names the newest trace
    (kube-runtime's recorder would repeat the first note), and a condition another field
    manager applied to the status survives the operator's server-side apply."""
    name = f"twice-{secrets.token_hex(3)}"
    manifest = {
        "apiVersion": "tracing.example.com/v1alpha1",
        "kind": "Echo",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"message": "first"},
    }
    kubectl.apply(stdin=yaml.safe_dump(manifest))
    try:
        first = kubectl.wait_ready("default", name)
        foreign = {
            "apiVersion": "tracing.example.com/v1alpha1",
            "kind": "Echo",
            "metadata": {"name": name, "namespace": "default"},
            "status": {"conditions": [{
                "type": "Audited", "status": "True", "reason": "PolicyChecked", "message": "by another controller",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]},
        }
        kubectl.run("apply", "--server-side", "--subresource=status", "--field-manager=auditor", "-f", "-",
                    stdin=yaml.safe_dump(foreign))
        manifest["spec"]["message"] = "second"
        kubectl.apply(stdin=yaml.safe_dump(manifest))
        second = eventually("the second generation Ready", lambda: kubectl.wait_ready("default", name),
                            until=lambda echo: echo["metadata"]["generation"] >= 2, timeout=60, interval=0.5)
        assert second["status"]["traceId"] != first["status"]["traceId"]

        events = kubectl.json("get", "events.events.k8s.io", "-n", "default")["items"]
        mine = sorted(
            (e for e in events if e["regarding"]["name"] == name and e["reason"] == "Reconciled"),
            key=lambda e: e["eventTime"],
        )
        assert second["status"]["traceId"] in mine[-1]["note"], json.dumps(mine, indent=1)
        assert any(first["status"]["traceId"] in e["note"] for e in mine[:-1]), json.dumps(mine, indent=1)

        types = {c["type"] for c in second["status"]["conditions"]}
        assert types == {"Ready", "Audited"}, second["status"]
        managed = kubectl.json("get", "echoes.tracing.example.com", name, "-n", "default",
                               "--show-managed-fields")["metadata"]["managedFields"]
        owners = {m["manager"]: json.dumps(m.get("fieldsV1", {})) for m in managed if m.get("subresource") == "status"}
        assert "echo-operator" in owners and "auditor" in owners, owners
        assert '"k:{\\"type\\":\\"Audited\\"}"' not in owners.get("echo-operator", ""), owners
    finally:
        kubectl.run("delete", "echoes.tracing.example.com", name, "-n", "default", "--wait=true")


def test_deleting_the_samples_is_traced_and_removes_the_finalizer(samples, kubectl, jaeger):
    since_us = int(time.time() * 1_000_000)
    for name, (_, obj) in SAMPLES.items():
        kubectl.run("delete", "echoes.tracing.example.com", name, "-n", obj["metadata"]["namespace"], "--wait=false")
    for name, (_, obj) in SAMPLES.items():
        namespace = obj["metadata"]["namespace"]
        kubectl.wait_gone(namespace, name)

        def cleanup_trace(path=f"/v1/echoes/{namespace}/{name}"):
            """The complete trace whose DELETE reached the echo service after the delete."""
            return next(
                (
                    t
                    for t in jaeger.search(ECHO, f"DELETE {ECHO_ROUTE}")
                    if any(s.start_us >= since_us for s in t.find(ECHO, kind="server", **{"url.path": path}))
                    and complete(t, CLEANUP)
                ),
                None,
            )

        trace = jaeger.wait_for(f"the cleanup trace of {namespace}/{name}", cleanup_trace, bool)
        _, calls = assert_reconcile_chain(jaeger, trace, namespace, name, CLEANUP)
        assert int(calls[-1].tags["http.response.status_code"]) == 204
