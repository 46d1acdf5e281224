"""A trace as a tree of text, for a terminal: what a person reads when there is no Jaeger UI
(the Jaeger built from its Go module has none) and what a failing cluster test prints.

One line per span: service, the tree with the span's name, kind, start offset from the
trace's first span, duration, and status; links follow their span on lines of their own.
Standard library only, so `e2e/trace` runs with any python3."""

from e2elib.jaeger import Span, Trace

KINDS = {"server": "SERVER", "client": "CLIENT", "producer": "PRODUCER", "consumer": "CONSUMER"}


def kind(span: Span) -> str:
    return KINDS.get(span.kind or "", "INTERNAL")


def status(span: Span) -> str:
    """ERROR with its description, OK if the span says so, nothing when unset."""
    code = str(span.tags.get("otel.status_code", "")).upper()
    if code == "ERROR" or span.tags.get("error") in (True, "true"):
        description = span.tags.get("otel.status_description") or span.tags.get("error.type")
        return f"ERROR {description}" if description else "ERROR"
    return "OK" if code == "OK" else ""


def duration(us: int) -> str:
    if us < 1_000:
        return f"{us} µs"
    if us < 1_000_000:
        return f"{us / 1_000:.1f} ms"
    return f"{us / 1_000_000:.2f} s"


def _link(trace: Trace, link: tuple) -> str:
    trace_id, span_id = link
    if trace_id == trace.trace_id and span_id in trace.by_id:
        target = trace.by_id[span_id]
        return f"⇢ link to {target.service} {target.name!r} in this trace"
    return f"⇢ link to trace {trace_id} span {span_id}"


def _rows(trace: Trace):
    """(service, tree + name, span or link text) in tree order. A span whose parent is not in
    the trace (lost, not yet exported, or in the caller's process) starts a tree of its own
    and says so."""
    children = {}
    roots = []
    for span in sorted(trace.spans, key=lambda s: (s.start_us, s.span_id)):
        if span.parent_id in trace.by_id:
            children.setdefault(span.parent_id, []).append(span)
        else:
            roots.append(span)

    def walk(span, lead, branch):
        name = span.name
        if span.parent_id and span.parent_id not in trace.by_id:
            name += f"  (parent {span.parent_id} not in this trace)"
        yield span.service, lead + branch + name, span
        below = children.get(span.span_id, [])
        inner = lead + ("   " if branch == "└─ " else "│  " if branch else "")
        for link in span.links:
            yield "", inner + ("│  " if below else "   ") + _link(trace, link), None
        for i, child in enumerate(below):
            yield from walk(child, inner, "└─ " if i == len(below) - 1 else "├─ ")

    for root in roots:
        yield from walk(root, "", "")


def render(trace: Trace) -> str:
    if not trace.spans:
        return f"trace {trace.trace_id}: no spans"
    first = min(s.start_us for s in trace.spans)
    last = max(s.start_us + s.duration_us for s in trace.spans)
    rows = list(_rows(trace))
    service_width = max(len(service) for service, _, _ in rows)
    tree_width = max(len(tree) for _, tree, span in rows if span is not None)
    lines = [
        f"trace {trace.trace_id}: {len(trace.spans)} spans, "
        f"{len(trace.services)} services, {duration(last - first)}"
    ]
    for service, tree, span in rows:
        if span is None:
            lines.append(f"{'':{service_width}}  {tree}")
            continue
        lines.append(
            f"{service:{service_width}}  {tree:{tree_width}}  {kind(span):8}"
            f"  +{duration(span.start_us - first):>9}  {duration(span.duration_us):>9}  {status(span)}".rstrip()
        )
    return "\n".join(lines)
