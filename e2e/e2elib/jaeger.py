"""Reads traces back from Jaeger's query API (the HTTP JSON API its UI uses)."""

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from e2elib.polling import eventually


@dataclass
class Span:
    service: str
    name: str
    span_id: str
    parent_id: str | None
    tags: dict
    start_us: int
    duration_us: int
    links: list = field(default_factory=list)

    @property
    def kind(self):
        return self.tags.get("span.kind")

    def __repr__(self):
        return f"<{self.service}: {self.name!r} {self.kind or 'internal'} {self.span_id}>"


class Trace:
    def __init__(self, trace_id, spans):
        self.trace_id = trace_id
        self.spans = spans
        self.by_id = {s.span_id: s for s in spans}

    def find(self, service=None, name=None, kind=None, **tags):
        return [
            s
            for s in self.spans
            if (service is None or s.service == service)
            and (name is None or s.name == name)
            and (kind is None or s.kind == kind)
            and all(str(s.tags.get(k)) == str(v) for k, v in tags.items())
        ]

    def one(self, service=None, name=None, kind=None, **tags):
        found = self.find(service, name, kind, **tags)
        assert len(found) == 1, f"expected one {service}/{name} span, found {found} in {self}"
        return found[0]

    def children(self, span):
        return [s for s in self.spans if s.parent_id == span.span_id]

    def assert_parent(self, child, parent):
        assert child.parent_id == parent.span_id, (
            f"{child} should be a child of {parent}, its parent is {self.by_id.get(child.parent_id)}"
        )

    @property
    def services(self):
        return {s.service for s in self.spans}

    def __repr__(self):
        return f"trace {self.trace_id}: " + ", ".join(map(repr, self.spans))


def _tags(items):
    return {t["key"]: t["value"] for t in items or []}


def _parse(trace):
    processes = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    spans = []
    for s in trace["spans"]:
        refs = s.get("references") or []
        parents = [r["spanID"] for r in refs if r["refType"] == "CHILD_OF" and r["traceID"] == s["traceID"]]
        spans.append(
            Span(
                service=processes[s["processID"]],
                name=s["operationName"],
                span_id=s["spanID"],
                parent_id=parents[0] if parents else None,
                tags=_tags(s.get("tags")),
                start_us=s["startTime"],
                duration_us=s["duration"],
                links=[(r["traceID"], r["spanID"]) for r in refs if r["refType"] == "FOLLOWS_FROM"],
            )
        )
    return Trace(trace["traceID"], spans)


class Jaeger:
    def __init__(self, url):
        self.url = url.rstrip("/")
        # The newest copy of every trace fetched, so a failing test can print what it saw.
        self.seen = {}

    def _get(self, path, params=None):
        query = "?" + urllib.parse.urlencode(params) if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def services(self):
        """The services Jaeger knows, or None while it does not answer."""
        try:
            return (self._get("/api/services") or {}).get("data") or []
        except OSError:
            return None

    def trace(self, trace_id):
        body = self._get(f"/api/traces/{trace_id}")
        if not body or not body.get("data"):
            return None
        trace = _parse(body["data"][0])
        self.seen[trace_id] = trace
        return trace

    def search(self, service, operation, lookback_us=3_600_000_000, tags=None, limit=200):
        """Traces with a span of service/operation (carrying `tags`, if given)."""
        now_us = int(time.time() * 1_000_000)
        params = {"service": service, "operation": operation, "start": now_us - lookback_us, "end": now_us,
                  "limit": limit}
        if tags:
            params["tags"] = json.dumps(tags)
        body = self._get("/api/traces", params)
        return [_parse(t) for t in (body or {}).get("data") or []]

    def linked_spans(self, service, operation, trace_id, span_id):
        """(trace, span) for each SERVER span of service/operation that links to the span
        trace_id/span_id: how an API server records a request it would not let join a trace."""
        return [
            (t, s)
            for t in self.search(service, operation)
            for s in t.find(service, operation, kind="server")
            if (trace_id, span_id) in s.links
        ]

    def wait_for(self, what, fetch, ready, timeout=90):
        """Polls until fetch() returns something ready() accepts: spans reach Jaeger in
        batches, and the last one (the status write) comes a few seconds after the rest."""
        return eventually(f"Jaeger to show {what}", fetch, until=lambda last: last is not None and ready(last),
                          timeout=timeout, interval=1)

    def wait_for_trace(self, trace_id, what, ready, timeout=90):
        return self.wait_for(what, lambda: self.trace(trace_id), ready, timeout)
