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
    ("operator: peak RSS (MiB)", ("operator", "peak_rss_mib"), 1),
    ("echo-server: CPU seconds", ("echo_server", "cpu_seconds"), 1),
    ("echo-server: peak RSS (MiB)", ("echo_server", "peak_rss_mib"), 1),
    ("kube-apiserver: CPU seconds", ("harness_cpu_seconds", "kube-apiserver"), 1),
    ("etcd: CPU seconds", ("harness_cpu_seconds", "etcd"), 1),
    ("Jaeger: CPU seconds", ("harness_cpu_seconds", "jaeger"), 1),
    ("operator: spans ended", ("operator", "spans", "ended"), 0),
    ("operator: spans exported", ("operator", "spans", "exported"), 0),
    ("operator: spans not exported (dropped or refused)", ("operator", "spans", "lost"), 0),
    ("echo-server: spans not exported (dropped or refused)", ("echo_server", "spans", "lost"), 0),
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
    for mode in ("A", "B"):
        runs = [run for run in results["echo_load"] if run["mode"] == mode]
        if runs:
            load[mode] = {k: _spread([run[k] for run in runs])
                          for k in ("requests_per_second", "p50_ms", "p99_ms", "cpu_us_per_request",
                                    "jaeger_cpu_seconds", "spans_lost")}
    summary["echo_load"] = load
    return summary


def _cell(spread, digits):
    if spread["min"] == spread["max"]:
        return f"{spread['median']:.{digits}f}"
    return f"{spread['median']:.{digits}f} ({spread['min']:.{digits}f}–{spread['max']:.{digits}f})"


def _ratio(a, b):
    return f"{b / a:.2f}" if a else "–"


def markdown(results):
    summary = results["summary"]
    modes = summary["modes"]
    m = results["machine"]
    rounds = len([r for r in results["rounds"] if r["mode"] == "A"])
    lines = [
        f"{results['objects']} Echo objects per round, {rounds} rounds of A B C interleaved; "
        f"median (min–max). Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}. Latency by the benchmark's clock, request sent to Ready seen in a watch.",
        "",
        "| | A: tracing off | B: exporting to Jaeger | C: collector unreachable | B/A | C/A |",
        "|---|---|---|---|---|---|",
    ]
    for label, path, digits in ROWS:
        key = "/".join(path)
        cells = [_cell(modes[mode][key], digits) if mode in modes else "–" for mode in "ABC"]
        medians = {mode: modes[mode][key]["median"] for mode in modes}
        lines.append(f"| {label} | {' | '.join(cells)} | {_ratio(medians.get('A'), medians.get('B', 0))} | "
                     f"{_ratio(medians.get('A'), medians.get('C', 0))} |")
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
    if "A" in load and "B" in load:
        rps = {mode: load[mode]["requests_per_second"] for mode in load}
        lines += [
            "",
            "| echo-server alone (wrk, 16 connections) | off | on, exporting | on/off |",
            "|---|---|---|---|",
            f"| requests per second | {_cell(rps['A'], 0)} | {_cell(rps['B'], 0)} | "
            f"{_ratio(rps['A']['median'], rps['B']['median'])} |",
        ]
        for key, label in (("p50_ms", "p50 latency (ms)"), ("p99_ms", "p99 latency (ms)"),
                           ("cpu_us_per_request", "echo-server CPU per request (µs)"),
                           ("jaeger_cpu_seconds", "Jaeger CPU seconds during the run"),
                           ("spans_lost", "spans not exported (queue full: dropped)")):
            lines.append(f"| {label} | {_cell(load['A'][key], 2)} | {_cell(load['B'][key], 2)} | "
                         f"{_ratio(load['A'][key]['median'], load['B'][key]['median'])} |")
    return "\n".join(lines) + "\n"
