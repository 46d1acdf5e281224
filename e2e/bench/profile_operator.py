"""Where a traced reconcile's extra CPU goes: sums the perf samples of every round's operator
(`bench.py --perf DIR`, make profile-operator) per component (profile_summary.COMPONENTS),
divides by that round's reconciles, and compares each mode with mode A.

    profile_operator.py RESULTS_JSON PERF_DIR

Prints µs of operator CPU per reconcile by component and mode (the mean over rounds), then
the frames that grew most from A to the next mode."""

import json
import re
import subprocess
import sys
from pathlib import Path

from profile_summary import LINE, component

EVENT_COUNT = re.compile(r"Event count \(approx\.\): (\d+)")


def frames_us(data, reconciles):
    """µs per reconcile of every symbol's self time in one perf data file (cpu-clock: the event
    count is nanoseconds)."""
    report = subprocess.run(["perf", "report", "--stdio", "--no-children", "--sort", "symbol", "-i", str(data)],
                            capture_output=True, text=True, errors="replace", check=True).stdout
    total_ns = float(EVENT_COUNT.search(report)[1])
    frames = {}
    for line in report.splitlines():
        if m := LINE.match(line):
            symbol = f"{m[2]} {m[3].strip()}"
            frames[symbol] = frames.get(symbol, 0.0) + float(m[1]) / 100 * total_ns / 1000 / reconciles
    return frames


def mean(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v / len(dicts)
    return out


def main(results_json, perf_dir):
    rounds = json.loads(Path(results_json).read_text())["rounds"]
    by_mode = {}
    for r in rounds:
        data = Path(perf_dir, f"operator-{r['round']}-{r['mode'].lower()}.data")
        reconciles = sum(r[phase]["reconciles"] for phase in ("create", "update", "delete"))
        by_mode.setdefault(r["mode"], []).append(frames_us(data, reconciles))
    frames = {mode: mean(runs) for mode, runs in by_mode.items()}
    modes = sorted(frames)
    totals = {mode: {} for mode in modes}
    for mode in modes:
        for symbol, us in frames[mode].items():
            totals[mode][component(symbol)] = totals[mode].get(component(symbol), 0.0) + us
    names = sorted({c for t in totals.values() for c in t}, key=lambda c: -max(t.get(c, 0) for t in totals.values()))
    others = [m for m in modes if m != "A"]
    print("| component (µs of operator CPU per reconcile) | " + " | ".join(modes) + " | "
          + " | ".join(f"{m} − A" for m in others) + " |")
    print("|---" * (1 + len(modes) + len(others)) + "|")
    for name in names + ["total"]:
        row = {m: (sum(totals[m].values()) if name == "total" else totals[m].get(name, 0.0)) for m in modes}
        diffs = [f"{row[m] - row.get('A', 0.0):+.1f}" for m in others]
        print(f"| {name} | " + " | ".join(f"{row[m]:.1f}" for m in modes) + " | " + " | ".join(diffs) + " |")
    for m in others:
        growth = sorted(((frames[m].get(k, 0.0) - frames.get("A", {}).get(k, 0.0), k)
                         for k in set(frames[m]) | set(frames.get("A", {}))), reverse=True)
        print(f"\nframes that grew most from A to {m} (µs per reconcile):")
        for us, symbol in growth[:20]:
            print(f"{us:7.1f}  {symbol[:140]}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
