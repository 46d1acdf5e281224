"""How the operator's cost grows with its work (make bench-scale): modes A (tracing off) and B
(exporting to Jaeger) at 1,000, 3,000 and 10,000 objects, rounds of creates, updates and
deletes through the benchmark's own round (bench.py). Each phase's requests go out at the same
pace at every count (--rate; 0 sends them as fast as the API server takes them). One round by
default; `--rounds N` runs every count and mode N times, interleaved, and the table gives
medians. `--compare NAME=DIR` also runs the binaries in DIR beside this build's at every count
and mode, in turns (each round changes which runs first): two builds side by side. Per object
count and mode: operator CPU per reconcile, peak RSS, API writes per object and phase (the API
server's own count), Events, spans exported, time to all Ready, and in B whether every trace is
whole. Beside each round a speed probe (speed.py) times a fixed piece of work, and the CPU per
reconcile's growth is also fitted with the probe's reading taken out (speed_fit.py): a shared
VM's speed drifts, and the rounds of one count must not be read against another's on a faster
hour. Writes results.json, results.md and scale.png, and each round's whole result (its CPU
second by second, each phase's CPU) in rounds/; fails on errors and incomplete traces, never
on timing."""

import argparse
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402

from bench import ROOT, Bench, add_round_options, machine  # noqa: E402
from programs import add_operator_options  # noqa: E402
from scale_report import THIS_BUILD, growth, markdown, mode_label, row, summarise  # noqa: E402


# Objects a second in each phase, at every count: about 60 % of what the loopback harness takes
# at 10,000 objects (160 creates a second unpaced), so that every count's rounds get the same
# arrival rate and the API server is never the bottleneck (docs/performance.md).
PACE = 100


def plot(rows, path):
    panels = [("operator_cpu_ms_per_reconcile", "operator CPU per reconcile (ms)"),
              ("operator_peak_rss_mib", "operator peak RSS (MiB)"),
              ("seconds_to_all_ready", "create: seconds to all Ready"),
              ("events_per_object", "Events per object")]
    figure, axes = plt.subplots(1, len(panels), figsize=(16, 3.8))
    for axis, (key, title) in zip(axes, panels):
        for mode, build in sorted({(r["mode"], r["build"]) for r in rows}):
            mine = sorted((r for r in rows if (r["mode"], r["build"]) == (mode, build)), key=lambda r: r["objects"])
            axis.plot([r["objects"] for r in mine], [r[key] for r in mine], marker="o",
                      label=f"mode {mode_label(mode, build)}")
        axis.set_title(title)
        axis.set_xlabel("objects")
        axis.grid(alpha=0.3)
        axis.set_ylim(bottom=0)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def compared_build(text):
    """NAME=DIR of --compare; NAME goes into namespaces, so it is a DNS label's lower-case letters and digits."""
    name, _, directory = text.partition("=")
    if not re.fullmatch(r"[a-z0-9]{1,12}", name) or name == THIS_BUILD or not directory:
        raise argparse.ArgumentTypeError(f"expected NAME=DIR, NAME 1-12 of a-z0-9 other than {THIS_BUILD!r}: {text!r}")
    if not all((Path(directory) / program).is_file() for program in ("operator", "echo-server")):
        raise argparse.ArgumentTypeError(f"{directory} holds no operator and echo-server")
    return name, directory


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,3000,10000", help="object counts (default 1000,3000,10000)")
    parser.add_argument("--modes", default="AB", help="modes per count (default AB)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of every count and mode, interleaved (default 1); the table gives medians")
    add_round_options(parser, rate=PACE)
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    parser.add_argument("--out", default=str(ROOT / "target" / "bench-scale"))
    parser.add_argument("--perf", metavar="DIR",
                        help="sample each round's operator with perf into DIR (a profile, not a benchmark)")
    parser.add_argument("--compare", type=compared_build, action="append", default=[], metavar="NAME=DIR",
                        help="also run the binaries in DIR beside this build's at every count and mode, in turns")
    add_operator_options(parser)
    args = parser.parse_args()
    builds = [(THIS_BUILD, args.bin_dir), *args.compare]
    if len({name for name, _ in builds}) != len(builds):
        parser.error("each --compare needs a name of its own")
    counts = [int(c) for c in args.counts.split(",")]

    args.objects = counts[0]
    bench = Bench(args)
    raw = Path(args.out) / "rounds"  # each round's whole result, as bench.py returns it
    raw.mkdir(parents=True, exist_ok=True)
    rounds = []
    for index in range(1, args.rounds + 1):
        for objects in counts:
            bench.args.objects = objects
            for mode in args.modes:
                # Each round turns the order of the builds, so that neither always runs first.
                turn = (index - 1) % len(builds)
                for build, bin_dir in builds[turn:] + builds[:turn]:
                    print(f"bench-scale: round {index}, {objects} objects, mode {mode}, build {build}",
                          file=sys.stderr)
                    bench.bin = Path(bin_dir)
                    # A label of its own per round: the same count's namespace from the round before
                    # may still be terminating (409 AlreadyExists), and logs must not mix.
                    label = f"{objects}-r{index}" + ("" if build == THIS_BUILD else f"-{build}")
                    result = bench.run_round(mode, label)
                    (raw / f"{label}-{mode.lower()}.json").write_text(json.dumps(result))
                    rounds.append(dict(row(objects, mode, result), round=index, build=build))
                    print(f"bench-scale:   "
                          f"{json.dumps({k: v for k, v in rounds[-1].items() if k != 'api_writes_per_object'})}",
                          file=sys.stderr)
    rows = summarise(rounds)
    results = {"machine": machine(), "rate": args.rate, "operator_env": dict(args.operator_env),
               "operator_protocol": args.operator_protocol, "rounds": args.rounds, "per_round": rounds,
               "builds": dict(builds), "rows": rows,
               "growth": {mode: growth(rows, mode, rounds=rounds) for mode in args.modes},
               "growth_by_build": {build: {mode: growth(rows, mode, build, rounds) for mode in args.modes}
                                   for build, _ in builds}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "results.md").write_text(table)
    plot(rows, out / "scale.png")
    print(table)
    problems = [f"{r['objects']} objects, mode {r['mode']}, build {r['build']}: {e}" for r in rows for e in r["errors"]]
    if problems:
        print("bench-scale: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
