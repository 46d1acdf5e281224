"""The benchmark's rounds reduced to medians with their spread, and the Markdown table."""

import math
import statistics

# (label, path into a round's result, digits) for the reconcile rounds.
ROWS = [
    ("create: first request to all Ready (s)", ("create", "seconds"), 1),
    ("create: objects Ready per second", ("create", "objects_per_second"), 1),
    ("create: reconciles per second", ("create", "reconciles_per_second"), 1),
    ("create: request to Ready p50 (ms)", ("create", "p50_ms"), 0),
    ("create: request to Ready p95 (ms)", ("create", "p95_ms"), 0),
    ("create: request to Ready p99 (ms)", ("create", "p99_ms"), 0),
    ("update: first request to all Ready (s)", ("update", "seconds"), 1),
    ("update: objects Ready per second", ("update", "objects_per_second"), 1),
    ("update: request to Ready p50 (ms)", ("update", "p50_ms"), 0),
    ("update: request to Ready p99 (ms)", ("update", "p99_ms"), 0),
    ("delete: first request to all gone (s)", ("delete", "seconds"), 1),
    ("operator: CPU seconds", ("operator", "cpu_seconds"), 1),
    # The figure issue 19's CPU target is about, unrounded enough to read a 5 % difference.
    ("operator: CPU µs per reconcile", ("operator", "cpu_us_per_reconcile"), 0),
    # What the SDK's batch processor thread spends: opentelemetry-otlp's copy and conversion of
    # each batch (its encoding and transport run on the tokio workers).
    ("operator: of which the span export thread, µs per reconcile", ("operator", "export_thread_us_per_reconcile"), 0),
    ("operator: peak RSS (MiB)", ("operator", "peak_rss_mib"), 1),
    ("echo-server: CPU seconds", ("echo_server", "cpu_seconds"), 1),
    ("echo-server: peak RSS (MiB)", ("echo_server", "peak_rss_mib"), 1),
    ("kube-apiserver: CPU seconds", ("harness_cpu_seconds", "kube-apiserver"), 1),
    ("etcd: CPU seconds", ("harness_cpu_seconds", "etcd"), 1),
    ("Jaeger: CPU seconds", ("harness_cpu_seconds", "jaeger"), 1),
    # On a machine whose cores are all busy, throughput follows this sum more than anything.
    ("all five: CPU ms per object (create + update + delete)", ("cpu_ms_per_object",), 2),
    ("operator: spans ended", ("operator", "spans", "ended"), 0),
    ("operator: spans exported", ("operator", "spans", "exported"), 0),
    ("operator: spans not exported (dropped or refused)", ("operator", "spans", "lost"), 0),
    ("echo-server: spans not exported (dropped or refused)", ("echo_server", "spans", "lost"), 0),
]


# The reconcile rounds' columns, each also as a ratio to A.
TABLE_MODES = [("A", "A: tracing off"), ("B", "B: exporting to Jaeger"), ("C", "C: collector unreachable"),
               ("R", "R: recorded, not exported")]
# The echo-server alone: off, recorded but not exported, exporting nowhere, exporting to Jaeger.
LOAD_MODES = ("A", "R", "C", "B")
LOAD_ROWS = [
    ("requests_per_second", "requests per second"),
    ("p50_ms", "p50 latency (ms)"),
    ("p99_ms", "p99 latency (ms)"),
    ("cpu_us_per_request", "echo-server CPU per request (µs)"),
    ("jaeger_cpu_us_per_request", "Jaeger CPU per request (µs), same cores"),
    ("spans_lost", "spans not exported (dropped or refused)"),
]


def _get(result, path):
    for key in path:
        result = result[key]
    return result


def _spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "all": values}


def percentile(values, q):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarise(results):
    for r in results["rounds"]:
        for program in ("operator", "echo_server"):
            spans = r[program]["spans"]
            spans["lost"] = spans["ended"] - spans["exported"]
        reconciles = sum(r[phase]["reconciles"] for phase in ("create", "update", "delete"))
        r["operator"]["cpu_us_per_reconcile"] = r["operator"]["cpu_seconds"] / max(reconciles, 1) * 1e6
        export_thread = r["operator"].get("export_thread_cpu_seconds", 0.0)
        r["operator"]["export_thread_us_per_reconcile"] = export_thread / max(reconciles, 1) * 1e6
        total = r["operator"]["cpu_seconds"] + r["echo_server"]["cpu_seconds"] + sum(r["harness_cpu_seconds"].values())
        r["cpu_ms_per_object"] = total / results["objects"] * 1e3
    modes = sorted({r["mode"] for r in results["rounds"]})
    summary = {"modes": {}}
    for mode in modes:
        rounds = [r for r in results["rounds"] if r["mode"] == mode]
        summary["modes"][mode] = {"/".join(path): _spread([_get(r, path) for r in rounds]) for _, path, _ in ROWS}
    traced = [r for r in results["rounds"] if r.get("traces")]
    if traced:
        seconds = [s for r in traced for s in r["seconds_to_jaeger"]]
        summary["traces"] = {
            "checked": sum(r["traces"]["checked"] for r in traced),
            "spans_expected": sum(r["traces"]["spans_expected"] for r in traced),
            "spans_found": sum(r["traces"]["spans_found"] for r in traced),
            "seconds_to_jaeger": {"samples": len(seconds), "p50": percentile(seconds, 50) if seconds else None,
                                  "p95": percentile(seconds, 95) if seconds else None,
                                  "max": max(seconds) if seconds else None},
        }
    load = {}
    for run in results["echo_load"]:
        run["spans_lost"] = run["spans"]["ended"] - run["spans"]["exported"]
        run["jaeger_cpu_us_per_request"] = run["jaeger_cpu_seconds"] / run["requests"] * 1e6
    for mode in LOAD_MODES:
        runs = [run for run in results["echo_load"] if run["mode"] == mode]
        if runs:
            load[mode] = {k: _spread([run[k] for run in runs]) for k, _ in LOAD_ROWS}
    summary["echo_load"] = load
    return summary


def _cell(spread, digits):
    if spread["min"] == spread["max"]:
        return f"{spread['median']:.{digits}f}"
    return f"{spread['median']:.{digits}f} ({spread['min']:.{digits}f}–{spread['max']:.{digits}f})"


def _ratio(a, b):
    return f"{b / a:.2f}" if a and b is not None else "–"


def markdown(results):
    summary = results["summary"]
    modes = summary["modes"]
    m = results["machine"]
    rounds = len([r for r in results["rounds"] if r["mode"] == "A"])
    order = " ".join(dict.fromkeys(r["mode"] for r in results["rounds"]))
    lines = [
        f"{results['objects']} Echo objects per round, {rounds} rounds of {order} interleaved; "
        f"median (min–max). Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}. Latency by the benchmark's clock, request sent to Ready seen in a watch.",
        "",
        f"| | {' | '.join(title for _, title in TABLE_MODES)} | "
        f"{' | '.join(f'{mode}/A' for mode, _ in TABLE_MODES[1:])} |",
        "|---" * (2 * len(TABLE_MODES)) + "|",
    ]
    for label, path, digits in ROWS:
        key = "/".join(path)
        cells = [_cell(modes[mode][key], digits) if mode in modes else "–" for mode, _ in TABLE_MODES]
        medians = {mode: modes[mode][key]["median"] for mode in modes}
        ratios = [_ratio(medians.get("A"), medians.get(mode)) for mode, _ in TABLE_MODES[1:]]
        lines.append(f"| {label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    traces = summary.get("traces")
    if traces:
        visible = traces["seconds_to_jaeger"]
        lines += [
            "",
            f"Mode B, every create and update trace fetched from Jaeger by `status.traceId`: "
            f"{traces['checked']} traces, {traces['spans_found']} of {traces['spans_expected']} expected spans found. "
            f"Ready to whole trace in Jaeger ({visible['samples']} sampled objects): p50 {visible['p50']:.2f} s, "
            f"p95 {visible['p95']:.2f} s, max {visible['max']:.2f} s.",
        ]
    load = summary["echo_load"]
    if all(mode in load for mode in LOAD_MODES):
        lines += [
            "",
            "| echo-server alone (wrk, 16 connections) | A: off | R: recorded, not exported "
            "| C: exporting to a closed port | B: exporting to Jaeger | R/A | C/A | B/A |",
            "|---" * 8 + "|",
        ]
        for key, label in LOAD_ROWS:
            cells = [load[mode][key] for mode in LOAD_MODES]
            digits = 0 if key == "requests_per_second" else 2
            ratios = [_ratio(cells[0]["median"], c["median"]) for c in cells[1:]]
            lines.append(f"| {label} | {' | '.join(_cell(c, digits) for c in cells)} | {' | '.join(ratios)} |")
    return "\n".join(lines) + "\n"
