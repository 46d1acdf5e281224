"""How the operator's cost grows with its work (make bench-scale): modes A (tracing off) and B
(exporting to Jaeger) at 1,000, 3,000 and 10,000 objects, one round of creates, updates and
deletes each, through the benchmark's own round (bench.py). Per object count and mode: operator
CPU per reconcile, peak RSS, API writes per object and phase (the API server's own count),
Events, spans exported, time to all Ready, and in B whether every trace is whole. Writes
results.json, results.md and scale.png; fails on errors and incomplete traces, never on timing."""

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402

from bench import ROOT, Bench, machine  # noqa: E402
from programs import add_operator_options  # noqa: E402

PHASES = ("create", "update", "delete")


def row(objects, mode, r):
    reconciles = sum(r[phase]["reconciles"] for phase in PHASES)
    writes = r["api_writes_per_object"]
    traces = r.get("traces")
    return {
        "objects": objects,
        "mode": mode,
        "operator_cpu_ms_per_reconcile": r["operator"]["cpu_seconds"] * 1e3 / reconciles,
        "operator_peak_rss_mib": r["operator"]["peak_rss_mib"],
        "reconciles_per_object": reconciles / objects,
        "api_writes_per_object": writes,
        "events_per_object": sum(w.get("POST events", 0) for w in writes.values()),
        "spans_exported_per_object": r["operator"]["spans"]["exported"] / objects,
        "seconds_to_all_ready": r["create"]["seconds"],
        "traces_whole": None if not traces else f"{traces['spans_found']}/{traces['spans_expected']} spans",
        "errors": r["errors"] + ([f"{r['reconcile_errors']:.0f} reconciles failed"] if r["reconcile_errors"] else [])
                  + ([f"{traces['spans_expected'] - traces['spans_found']} spans missing"]
                     if traces and traces["spans_found"] != traces["spans_expected"] else []),
    }


def growth(rows, mode):
    """RSS bytes per object and the CPU per reconcile's change, from the smallest count to the largest."""
    mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["objects"])
    if len(mine) < 2:
        return None
    low, high = mine[0], mine[-1]
    return {
        "rss_bytes_per_object": (high["operator_peak_rss_mib"] - low["operator_peak_rss_mib"]) * 2**20
        / (high["objects"] - low["objects"]),
        "cpu_per_reconcile_change": high["operator_cpu_ms_per_reconcile"] / low["operator_cpu_ms_per_reconcile"] - 1,
    }


def writes_cell(writes):
    return "; ".join(f"{phase}: " + ", ".join(f"{k} {v:g}" for k, v in writes[phase].items()) for phase in PHASES)


def markdown(results):
    m = results["machine"]
    lines = [
        f"One round per count and mode; machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB. API "
        "writes are the API server's own count per object, the benchmark's own request taken off.",
        "",
        "| objects | mode | operator CPU per reconcile (ms) | operator peak RSS (MiB) | reconciles per object "
        "| Events per object | spans exported per object | create: all Ready (s) | traces | API writes per object |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['objects']:,} | {r['mode']} | {r['operator_cpu_ms_per_reconcile']:.2f} | "
            f"{r['operator_peak_rss_mib']:.1f} | {r['reconciles_per_object']:.2f} | {r['events_per_object']:.2f} | "
            f"{r['spans_exported_per_object']:.1f} | {r['seconds_to_all_ready']:.1f} | {r['traces_whole'] or '–'} | "
            f"{writes_cell(r['api_writes_per_object'])} |")
    lines.append("")
    for mode, g in results["growth"].items():
        if g:
            lines.append(f"- mode {mode}: operator RSS grows {g['rss_bytes_per_object']:,.0f} bytes per object; "
                         f"CPU per reconcile changes {g['cpu_per_reconcile_change']:+.0%} from the smallest count to "
                         "the largest")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    panels = [("operator_cpu_ms_per_reconcile", "operator CPU per reconcile (ms)"),
              ("operator_peak_rss_mib", "operator peak RSS (MiB)"),
              ("seconds_to_all_ready", "create: seconds to all Ready"),
              ("events_per_object", "Events per object")]
    figure, axes = plt.subplots(1, len(panels), figsize=(16, 3.8))
    for axis, (key, title) in zip(axes, panels):
        for mode in sorted({r["mode"] for r in rows}):
            mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["objects"])
            axis.plot([r["objects"] for r in mine], [r[key] for r in mine], marker="o", label=f"mode {mode}")
        axis.set_title(title)
        axis.set_xlabel("objects")
        axis.grid(alpha=0.3)
        axis.set_ylim(bottom=0)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,3000,10000", help="object counts (default 1000,3000,10000)")
    parser.add_argument("--modes", default="AB", help="modes per count (default AB)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent API requests (default 16)")
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    parser.add_argument("--out", default=str(ROOT / "target" / "bench-scale"))
    parser.add_argument("--perf", metavar="DIR",
                        help="sample each round's operator with perf into DIR (a profile, not a benchmark)")
    add_operator_options(parser)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    args.objects = counts[0]
    bench = Bench(args)
    rows = []
    for objects in counts:
        bench.args.objects = objects
        for mode in args.modes:
            print(f"bench-scale: {objects} objects, mode {mode}", file=sys.stderr)
            rows.append(row(objects, mode, bench.run_round(mode, objects)))
            print(f"bench-scale:   {json.dumps({k: v for k, v in rows[-1].items() if k != 'api_writes_per_object'})}",
                  file=sys.stderr)
    results = {"machine": machine(), "operator_env": dict(args.operator_env),
               "operator_protocol": args.operator_protocol, "rows": rows,
               "growth": {mode: growth(rows, mode) for mode in args.modes}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "results.md").write_text(table)
    plot(rows, out / "scale.png")
    print(table)
    problems = [f"{r['objects']} objects, mode {r['mode']}: {e}" for r in rows for e in r["errors"]]
    if problems:
        print("bench-scale: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
