"""From a metric to the trace: Prometheus (exemplar storage on) scrapes the operator and the
echo-server; an exemplar on the reconcile duration histogram names a trace, and Jaeger has
that trace. Needs the Prometheus of the loopback harness (PROMETHEUS_URL); a cluster without
one skips, saying so."""

import json
import os
import secrets
import time
import urllib.parse
import urllib.request

import pytest

from e2elib.polling import eventually

PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL")
pytestmark = pytest.mark.skipif(
    not PROMETHEUS_URL,
    reason="SKIPPED: no PROMETHEUS_URL; e2e/up runs a Prometheus, a kind cluster from deploy/ has none",
)

# A delay that puts this reconcile alone in the (2.56 s, 5.12 s] bucket of the histogram,
# so no other test's reconcile replaces its exemplar before Prometheus scrapes it.
DELAY_MS = 3000


def exemplars(query, since):
    params = urllib.parse.urlencode({"query": query, "start": since, "end": time.time() + 60})
    with urllib.request.urlopen(f"{PROMETHEUS_URL}/api/v1/query_exemplars?{params}", timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return [(series["seriesLabels"], e) for series in body["data"] for e in series["exemplars"]]


def wait_for_exemplar(query, trace_id, since, timeout=60):
    def naming(found):
        return [(labels, e) for labels, e in found if e["labels"].get("trace_id") == trace_id]

    # Waits on every exemplar of the query, so a failure shows them all.
    found = eventually(f"an exemplar of {query} that names trace {trace_id}", lambda: exemplars(query, since),
                       until=naming, timeout=timeout, interval=1)
    return naming(found)


def test_an_exemplar_of_the_reconcile_histogram_leads_to_its_trace(kubectl, jaeger):
    since = time.time() - 1
    name = f"exemplar-{secrets.token_hex(3)}"
    kubectl.apply(
        stdin=json.dumps(
            {
                "apiVersion": "tracing.example.com/v1alpha1",
                "kind": "Echo",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"message": "from a bucket to a trace", "delayMs": DELAY_MS},
            }
        )
    )
    try:
        trace_id = kubectl.wait_ready("default", name)["status"]["traceId"]

        found = wait_for_exemplar("echo_operator_reconcile_duration_seconds_bucket", trace_id, since)
        labels, exemplar = found[0]
        assert labels["job"] == "echo-operator" and labels["result"] == "success", labels
        assert DELAY_MS / 1000 <= float(exemplar["value"]) <= float(labels["le"]), (labels, exemplar)

        # The trace the exemplar names, from Jaeger: the reconcile of this object, and the
        # echo-server's request in the same trace (whose own histogram names it too).
        trace = jaeger.wait_for_trace(
            exemplar["labels"]["trace_id"],
            "the trace named by the exemplar, with its reconcile and the echo-server's request",
            lambda t: t.find("echo-operator", "reconcile Echo") and t.find("echo-server", kind="server"),
        )
        reconcile = trace.one("echo-operator", "reconcile Echo")
        assert reconcile.tags["trace_id"] == trace_id
        watch = trace.one("echo-operator", kind="consumer")
        assert watch.tags["k8s.object.name"] == name
        assert abs(reconcile.duration_us / 1e6 - float(exemplar["value"])) < 0.5, (reconcile, exemplar)

        server = wait_for_exemplar("echo_server_request_duration_seconds_bucket", trace_id, since)
        assert {labels["job"] for labels, _ in server} == {"echo-server"}
        assert {labels["route"] for labels, _ in server} == {"/v1/echoes/{namespace}/{name}"}
    finally:
        kubectl.run("delete", "echoes.tracing.example.com", name, "-n", "default", "--wait=false", check=False)
