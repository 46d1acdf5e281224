"""Whether a reconcile's trace reached Jaeger whole, and how soon after Ready it could be
found there. A reconcile that wrote status names its trace in status.traceId; that trace must
hold the spans below, from both processes."""

import concurrent.futures
import time

from e2elib.jaeger import Jaeger
from e2elib.polling import TimedOut, eventually

OPERATOR, ECHO = "echo-operator", "echo-server"
STATUS_ROUTE = "PATCH /apis/tracing.example.com/v1alpha1/namespaces/{namespace}/echoes/{name}/status"


def _echo_client(span):
    return (
        span.service == OPERATOR
        and span.kind == "client"
        and span.tags.get("http.request.method") == "PUT"
        and "/v1/echoes/" in str(span.tags.get("url.full", ""))
    )


# The spans one reconcile of an object's spec leaves, by what they stand for.
EXPECTED = {
    "watch event": lambda s: s.service == OPERATOR and s.kind == "consumer" and s.name.startswith("watch Echo"),
    "kube-runtime reconcile": lambda s: s.service == OPERATOR and s.name == "reconciling object",
    "reconcile": lambda s: s.service == OPERATOR and s.name == "reconcile Echo",
    "echo CLIENT": _echo_client,
    "echo SERVER": lambda s: s.service == ECHO and s.kind == "server" and s.name.startswith("PUT "),
    "echo store write": lambda s: s.service == ECHO and s.name == "store write",
    "status write": lambda s: s.service == OPERATOR and s.name == "write status",
    "status PATCH CLIENT": lambda s: s.service == OPERATOR and s.kind == "client" and s.name == STATUS_ROUTE,
}


def missing(trace):
    """What of EXPECTED the trace lacks (everything, if Jaeger has no such trace)."""
    if trace is None:
        return list(EXPECTED)
    return [what for what, match in EXPECTED.items() if not any(match(s) for s in trace.spans)]


class TraceChecker:
    def __init__(self, jaeger_url):
        self.jaeger = Jaeger(jaeger_url)

    def fetch_missing(self, trace_id):
        try:
            return missing(self.jaeger.trace(trace_id))
        except OSError:
            return list(EXPECTED)

    def completeness(self, trace_ids, settle=30):
        """Fetches every trace, again for those still incomplete until `settle` seconds have
        passed (the last batch may still be on its way). Returns (expected spans, found spans,
        {trace id: what is missing})."""
        pending = {t: list(EXPECTED) for t in trace_ids}
        with concurrent.futures.ThreadPoolExecutor(8) as pool:

            def still_missing():
                nonlocal pending
                results = dict(zip(pending, pool.map(self.fetch_missing, list(pending))))
                pending = {t: m for t, m in results.items() if m}
                return pending

            try:
                eventually("every trace whole", still_missing, until=lambda left: not left, timeout=settle, interval=1)
            except TimedOut:
                pass  # what is still missing is the answer
        expected = len(trace_ids) * len(EXPECTED)
        return expected, expected - sum(len(m) for m in pending.values()), pending

    def seconds_until_complete(self, trace_id, ready_at, timeout=30, poll=0.1):
        """Seconds from Ready (time.monotonic() when it was seen) until Jaeger returns the whole
        trace, or None if it never does within `timeout`."""
        left = ready_at + timeout - time.monotonic()
        if left <= 0:
            return None
        try:
            eventually(f"trace {trace_id} whole", lambda: self.fetch_missing(trace_id),
                       until=lambda missing: not missing, timeout=left, interval=poll)
        except TimedOut:
            return None
        return time.monotonic() - ready_at
