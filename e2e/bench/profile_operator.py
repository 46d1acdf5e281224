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

from profile_summary import component

EVENT_COUNT = re.compile(r"Event count \(approx\.\): (\d+)")


# `perf report --sort comm,symbol`: "  1.23%  tokio-rt-worker  [.] malloc", padded, and for
# some recordings followed by empty columns ("-  -"), which are not part of the symbol.
THREAD_FRAME = re.compile(r"^\s*([\d.]+)%\s+(\S.*?)\s+(\[[.k]\])\s+(.*?)(?:\s+-)*\s*$")


def frames_us(data, reconciles):
    """µs per reconcile of every (thread name, symbol)'s self time in one perf data file
    (cpu-clock: the event count is nanoseconds). Thread names are the kernel's 15 characters:
    tokio's workers, the SDK's batch processor thread (`OpenTelemetry.T`), the main thread."""
    report = subprocess.run(["perf", "report", "--stdio", "--no-children", "--sort", "comm,symbol", "-i", str(data)],
                            capture_output=True, text=True, errors="replace", check=True).stdout
    total_ns = float(EVENT_COUNT.search(report)[1])
    frames = {}
    for line in report.splitlines():
        if not line.startswith("#") and (m := THREAD_FRAME.match(line)):
            key = (m[2], f"{m[3]} {m[4].strip()}")
            frames[key] = frames.get(key, 0.0) + float(m[1]) / 100 * total_ns / 1000 / reconciles
    return frames


def by(frames, key):
    """µs summed per `key(frame)` (a thread, a component, or both)."""
    out = {}
    for frame, us in frames.items():
        out[key(frame)] = out.get(key(frame), 0.0) + us
    return out


def mean(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0.0) + v / len(dicts)
    return out


def table(title, rows, modes):
    """One Markdown table: a row per key of `rows[mode]`, largest first, each mode's µs and its
    difference from A, and the total."""
    others = [m for m in modes if m != "A"]
    print(f"| {title} | " + " | ".join(modes) + " | " + " | ".join(f"{m} − A" for m in others) + " |")
    print("|---" * (1 + len(modes) + len(others)) + "|")
    names = sorted({n for r in rows.values() for n in r}, key=lambda n: -max(r.get(n, 0) for r in rows.values()))
    for name in names + ["total"]:
        row = {m: (sum(rows[m].values()) if name == "total" else rows[m].get(name, 0.0)) for m in modes}
        diffs = [f"{row[m] - row.get('A', 0.0):+.1f}" for m in others]
        print(f"| {name} | " + " | ".join(f"{row[m]:.1f}" for m in modes) + " | " + " | ".join(diffs) + " |")
    print()


def main(results_json, perf_dir):
    rounds = json.loads(Path(results_json).read_text())["rounds"]
    by_mode = {}
    for r in rounds:
        data = Path(perf_dir, f"operator-{r['round']}-{r['mode'].lower()}.data")
        reconciles = sum(r[phase]["reconciles"] for phase in ("create", "update", "delete"))
        by_mode.setdefault(r["mode"], []).append(frames_us(data, reconciles))
    frames = {mode: mean(runs) for mode, runs in by_mode.items()}
    modes = sorted(frames)
    table("component (µs of operator CPU per reconcile)",
          {m: by(frames[m], lambda f: component(f[1])) for m in modes}, modes)
    table("thread (µs of operator CPU per reconcile)", {m: by(frames[m], lambda f: f[0]) for m in modes}, modes)
    # Which thread each component's growth is on: the export thread's work is the batch
    # processor's (opentelemetry-otlp's copy and conversion); the workers' is recording, the
    # hand-over to the batch queue and the gRPC transport.
    def thread_and_component(frame):
        return frame[0], component(frame[1])

    for m in (m for m in modes if m != "A"):
        now, base = by(frames[m], thread_and_component), by(frames.get("A", {}), thread_and_component)
        growth = {key: now.get(key, 0.0) - base.get(key, 0.0) for key in now.keys() | base.keys()}
        print(f"| thread, component: {m} − A (µs per reconcile) | |\n|---|---|")
        for (thread, name), us in sorted(growth.items(), key=lambda item: -abs(item[1]))[:12]:
            print(f"| {thread}, {name} | {us:+.1f} |")
        print()
    for m in (m for m in modes if m != "A"):
        growth = sorted(((frames[m].get(k, 0.0) - frames.get("A", {}).get(k, 0.0), k)
                         for k in set(frames[m]) | set(frames.get("A", {}))), reverse=True)
        print(f"frames that grew most from A to {m} (µs per reconcile):")
        for us, (thread, symbol) in growth[:20]:
            print(f"{us:7.1f}  {thread:15}  {symbol[:120]}")
        print()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
