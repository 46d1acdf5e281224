"""What the operator sends the real API server, seen by each replica's api-proxy:

- only the trace context: an object whose annotations carry baggage (and a tracestate with a
  secret in it) is reconciled with requests that carry `traceparent` and no `baggage` header,
  and no header value repeats the secret;
- a LIST that hangs (the proxy holds it) is cut at the operator's LIST bound and tried again,
  the leader that cannot sync fails its liveness within its window, and once the LIST goes
  through the leader syncs, reconciles what changed meanwhile and is healthy again."""

import datetime
import json
import re
import secrets
import time

from cluster.test_trace_outcomes import K8S_TRACEPARENT
from cluster.test_traces import TRACEPARENT_ANNOTATION as TRACEPARENT
from e2elib.polling import eventually
from faults.conftest import manifest, ready
from faults.harness import LEASE

SECRET = "s3cr3t-b4gg4ge"
# The watch's LIST of every Echo (the cluster-wide collection without watch=true).
LIST_ECHOES = r"^GET /apis/tracing\.example\.com/v1alpha1/echoes(\?(?!.*\bwatch=(true|1)\b).*)?$"
LIST_TIMEOUT, RECONCILE_TIMEOUT, API_TIMEOUT = 5, 5, 3
# When a leader without a synced watch counts as wedged: twice the longest reconcile, its
# timeout and two API calls (Settings::stall_after).
LIVENESS_WINDOW = 2 * (RECONCILE_TIMEOUT + 2 * API_TIMEOUT)


def header(request, name):
    return next((v for k, v in request["headers"].items() if k.lower() == name), None)


def test_no_baggage_reaches_the_api_server(harness, kubectl, namespace):
    leader = harness.leader()
    traceparent = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
    echo = json.loads(manifest(namespace, "baggage"))
    echo["metadata"]["annotations"] = {
        TRACEPARENT: traceparent,
        K8S_TRACEPARENT: traceparent,
        "baggage": f"user.id={SECRET}",
        "tracing.k8s.io/baggage": f"user.id={SECRET}",
        "tracing.example.com/tracestate": f"vendor={SECRET}",
    }
    kubectl.apply(stdin=json.dumps(echo))
    trace_id = kubectl.wait_ready(namespace, "baggage")["status"]["traceId"]
    assert trace_id == traceparent.split("-")[1], "the reconcile continues the annotation's trace"

    def writes():
        return [r for r in harness.api_requests(leader)
                if r["method"] != "GET" and f"/namespaces/{namespace}/" in r["path"]]

    # The finalizer patch, the status write and the Event.
    sent = eventually("the reconcile's writes", writes, until=lambda w: len(w) >= 3, timeout=30)
    for request in sent:
        what = f"{request['method']} {request['path']}: {request['headers']}"
        context = header(request, "traceparent")
        assert context and context.split("-")[1] == trace_id, f"no trace context of the reconcile: {what}"
        assert header(request, "baggage") is None, what
        assert not any(SECRET in value for value in request["headers"].values()), what


def test_a_hung_list_is_cut_retried_and_reported(harness, kubectl, namespace, operators_with):
    kubectl.apply(stdin=manifest(namespace, "before"))
    kubectl.wait_ready(namespace, "before", timeout=60)
    started = time.time()
    harness.stall_api(LIST_ECHOES)
    operators_with(ready=False, args=("--list-timeout-seconds", str(LIST_TIMEOUT),
                                      "--reconcile-timeout-seconds", str(RECONCILE_TIMEOUT),
                                      "--api-timeout-seconds", str(API_TIMEOUT)))
    leader = harness.leader()
    # The window counts from when the replica began to lead, as its Lease says.
    lease = kubectl.json("get", "lease", LEASE[1], "-n", LEASE[0])
    leading_since = datetime.datetime.fromisoformat(lease["spec"]["acquireTime"].replace("Z", "+00:00")).timestamp()
    kubectl.apply(stdin=manifest(namespace, "during"))

    def stalled_lists():
        return [r for r in harness.api_requests(leader) if r.get("stalled") and r["time"] >= started]

    # A LIST without a bound would be held for ever, once; this one is cut and sent again.
    lists = eventually("the stalled LIST cut and retried", stalled_lists, until=lambda found: len(found) >= 2,
                       timeout=LIST_TIMEOUT * 4)
    assert all(re.search(LIST_ECHOES, f"GET {r['path']}") for r in lists), lists
    gaps = [b["time"] - a["time"] for a, b in zip(lists, lists[1:])]
    assert gaps[0] >= LIST_TIMEOUT - 1, f"the LIST was retried before its bound: {gaps}"
    eventually(f"{leader} failing its liveness", lambda: harness.healthz(leader), until=lambda code: code == 503,
               timeout=LIVENESS_WINDOW + 10)
    unhealthy_after = time.time() - leading_since
    assert ready(kubectl.echo(namespace, "during")) is None, "reconciled without a synced watch"

    harness.release_api()
    kubectl.wait_ready(namespace, "during", timeout=60)
    eventually(f"{leader} healthy again", lambda: harness.healthz(leader), until=lambda code: code == 200,
               timeout=30)
    print(f"{len(stalled_lists())} LISTs held, every {gaps} s; /healthz failed {unhealthy_after:.1f}s into its term")
    assert unhealthy_after <= LIVENESS_WINDOW + 3, f"/healthz failed only after {unhealthy_after:.1f}s leading"
