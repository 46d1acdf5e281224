"""The API server's side of trace context, with the caller's own credentials: a request
carrying a traceparent from a privileged caller (system:masters, system:monitoring) has its
API server spans inside the caller's trace; anyone else's gets a new trace linked to it.
The operator's least-privilege requests are the second case (test_traces.py)."""

import base64
import os
import secrets
import ssl
import tempfile
import urllib.request

from cluster.conftest import API_SERVER

PRIVILEGED_GROUPS = {"system:masters", "system:monitoring"}
PATH = "/apis/tracing.example.com/v1alpha1/namespaces/default/echoes"
OPERATION = "GET /apis/tracing.example.com/v1alpha1/namespaces/{:namespace}/echoes"


def request_with_traceparent(kubectl, path, traceparent):
    """GET path as the kubeconfig's user, over TLS as kubectl would, with a traceparent."""
    config = kubectl.json("config", "view", "--raw", "--minify")
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    context = ssl.create_default_context()
    if "certificate-authority-data" in cluster:
        context.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif "certificate-authority" in cluster:
        context.load_verify_locations(cafile=cluster["certificate-authority"])
    headers = {"traceparent": traceparent, "Accept": "application/json"}
    if "token" in user:
        headers["Authorization"] = f"Bearer {user['token']}"
    with tempfile.TemporaryDirectory() as tmp:
        if "client-certificate-data" in user:
            cert, key = os.path.join(tmp, "cert"), os.path.join(tmp, "key")
            for name, field in ((cert, "client-certificate-data"), (key, "client-key-data")):
                with open(name, "wb") as f:
                    f.write(base64.b64decode(user[field]))
            context.load_cert_chain(cert, key)
        elif "client-certificate" in user:
            context.load_cert_chain(user["client-certificate"], user["client-key"])
        request = urllib.request.Request(cluster["server"] + path, headers=headers)
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            assert response.status == 200


def test_api_server_follows_its_trust_rule_for_trace_context(kubectl, jaeger):
    groups = set(kubectl.json("auth", "whoami")["status"]["userInfo"].get("groups", []))
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    request_with_traceparent(kubectl, PATH, f"00-{trace_id}-{span_id}-01")

    if groups & PRIVILEGED_GROUPS:
        trace = jaeger.wait_for_trace(
            trace_id, "the API server's spans in the caller's trace", lambda t: t.find(API_SERVER, OPERATION)
        )
        server = trace.one(API_SERVER, OPERATION, kind="server")
        assert server.parent_id == span_id, "a privileged caller's span is the API server span's parent"
        assert trace.children(server), "the API server records its work below the request span"
    else:
        found = jaeger.wait_for(
            "an API server trace linked to the caller's span",
            lambda: jaeger.linked_spans(API_SERVER, OPERATION, trace_id, span_id),
            bool,
        )
        _, server = found[0]
        assert server.parent_id is None, "an unprivileged caller gets a new, linked trace"
