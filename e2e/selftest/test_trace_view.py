"""The terminal trace view (e2e/trace and e2e/e2elib/trace_view.py) on a trace built here in
Jaeger's JSON shape: tree order, kinds, status, links, orphans; and the command itself against
a local stand-in for Jaeger's query API."""

import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from e2elib.jaeger import _parse
from e2elib.trace_view import render

ROOT = Path(__file__).resolve().parents[2]

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"


def span(span_id, name, process, start, duration, parent=None, kind=None, links=(), **tags):
    references = [{"refType": "CHILD_OF", "traceID": TRACE, "spanID": parent}] if parent else []
    references += [{"refType": "FOLLOWS_FROM", "traceID": t, "spanID": s} for t, s in links]
    all_tags = dict(tags, **({"span.kind": kind} if kind else {}))
    return {
        "traceID": TRACE,
        "spanID": span_id,
        "operationName": name,
        "processID": process,
        "startTime": start,
        "duration": duration,
        "references": references,
        "tags": [{"key": k, "value": v} for k, v in all_tags.items()],
    }


def jaeger_json():
    t0 = 1_700_000_000_000_000
    return {
        "traceID": TRACE,
        "processes": {"p1": {"serviceName": "echo-operator"}, "p2": {"serviceName": "echo-server"}},
        "spans": [
            # Out of order on purpose: the view sorts by start time.
            span("c1", "PUT /v1/echoes/{namespace}/{name}", "p1", t0 + 3_000, 9_000, "r1", "client",
                 **{"otel.status_code": "ERROR", "otel.status_description": "503 Service Unavailable"}),
            span("w1", "watch Echo Apply", "p1", t0, 20_000, kind="consumer"),
            span("r1", "reconcile Echo", "p1", t0 + 1_000, 18_000, "w1", links=[(OTHER, "aaaaaaaaaaaaaaaa")]),
            span("s1", "PUT /v1/echoes/{namespace}/{name}", "p2", t0 + 4_000, 2_500_000, "c1", "server"),
            span("st", "write status", "p1", t0 + 13_000, 500, "r1"),
            span("o1", "store write", "p2", t0 + 5_000, 100, "gone00000000gone"),
        ],
    }


def lines_of(text):
    return text.splitlines()


def test_spans_are_drawn_as_a_tree_in_start_order():
    lines = lines_of(render(_parse(jaeger_json())))
    assert lines[0].startswith(f"trace {TRACE}: 6 spans, 2 services,")
    names = [line for line in lines[1:] if "⇢" not in line]
    order = ["watch Echo Apply", "reconcile Echo", "PUT", "PUT", "write status", "store write"]
    assert [next(n for n in order if n in line) for line in names] == order
    watch, reconcile, client, server, status, orphan = names
    # Each level is indented one step further than its parent, the last child closes with └─.
    depth = [line.index(name) for line, name in zip(names, order)]
    assert depth[0] < depth[1] < depth[2] < depth[3]
    assert depth[4] == depth[2], "write status is a sibling of the PUT"
    assert "├─ PUT" in client and "└─ write status" in status
    assert reconcile.startswith("echo-operator") and server.startswith("echo-server ")


def test_kind_duration_and_status_are_shown():
    lines = lines_of(render(_parse(jaeger_json())))
    watch = next(line for line in lines if "watch Echo Apply" in line)
    client = next(line for line in lines if "PUT" in line and "CLIENT" in line)
    server = next(line for line in lines if "SERVER" in line)
    status = next(line for line in lines if "write status" in line)
    assert "CONSUMER" in watch and "20.0 ms" in watch
    assert "ERROR 503 Service Unavailable" in client and re.search(r"\+ *3\.0 ms", client)
    assert "2.50 s" in server
    assert "INTERNAL" in status and "500 µs" in status and "ERROR" not in status


def test_links_follow_their_span_and_orphans_say_so():
    lines = lines_of(render(_parse(jaeger_json())))
    reconcile = next(i for i, line in enumerate(lines) if "reconcile Echo" in line)
    assert f"⇢ link to trace {OTHER} span aaaaaaaaaaaaaaaa" in lines[reconcile + 1]
    orphan = next(line for line in lines if "store write" in line)
    assert "(parent gone00000000gone not in this trace)" in orphan


@pytest.fixture
def fake_jaeger():
    """Serves the trace above at /api/traces/TRACE and 404 for anything else, like Jaeger."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == f"/api/traces/{TRACE}":
                body, code = json.dumps({"data": [jaeger_json()]}).encode(), 200
            else:
                body, code = b'{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}', 404
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run_trace(*args):
    return subprocess.run([sys.executable, str(ROOT / "e2e" / "trace"), *args],
                          capture_output=True, text=True, timeout=30)


def test_the_command_prints_the_tree_of_a_trace_from_jaeger(fake_jaeger):
    result = run_trace("--jaeger", fake_jaeger, TRACE)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == render(_parse(jaeger_json()))


def test_the_command_says_when_a_trace_is_missing_or_malformed(fake_jaeger):
    missing = run_trace("--jaeger", fake_jaeger, "--wait", "0", OTHER)
    assert missing.returncode == 1 and f"has no trace {OTHER}" in missing.stderr
    malformed = run_trace("--jaeger", fake_jaeger, "not-a-trace-id")
    assert malformed.returncode == 2 and "is not a trace id" in malformed.stderr
