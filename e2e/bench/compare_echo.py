"""Two builds of the echo-server side by side under wrk, interleaved in one run: for each round,
each mode (A tracing off, R recorded but not exported, C exporting to a closed port), the
`before` build then the `after` build. Prints requests per second and server CPU per request
(medians over the rounds) and each build's ratios to its own mode A. No collector is needed:
C is the exporter's whole cost with nothing to receive it.

    e2e/bench/compare-echo BEFORE_BIN AFTER_BIN [--rounds N] [--seconds S]
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from load import run_wrk
from programs import Program, free_port, telemetry_env

MODES = ("A", "R", "C")


def run(binary, mode, seconds, logs):
    port = free_port()
    env = {
        "RUST_LOG": "info",
        "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=bench,k8s.pod.name=echo-server-compare",
        **telemetry_env(mode, f"127.0.0.1:{free_port()}", "http/protobuf", free_port()),
    }
    url = f"http://127.0.0.1:{port}"
    program = Program(f"echo-server {mode}", [binary, "--listen", f"127.0.0.1:{port}"], env,
                      Path(logs) / f"echo-server-{mode}.log")
    try:
        program.wait_ready(f"{url}/healthz")
        before = program.cpu_seconds()
        result = run_wrk(url, seconds)
        result["cpu_us_per_request"] = (program.cpu_seconds() - before) / result["requests"] * 1e6
    finally:
        program.stop()
    if result["errors"]:
        raise RuntimeError(f"{binary} in mode {mode}: {result['errors']} failed requests")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()

    builds = {"before": args.before, "after": args.after}
    samples = {(build, mode): [] for build in builds for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="compare-echo-") as logs:
        for index in range(1, args.rounds + 1):
            for mode in MODES:
                for build, binary in builds.items():
                    result = run(binary, mode, args.seconds, logs)
                    samples[build, mode].append(result)
                    print(f"compare-echo: round {index} {mode} {build}: {result['requests_per_second']:.0f} req/s, "
                          f"{result['cpu_us_per_request']:.1f} µs CPU per request", file=sys.stderr)

    def median(build, mode, key):
        return statistics.median(r[key] for r in samples[build, mode])

    print(f"| build | {' | '.join(f'{m} req/s' for m in MODES)} | R/A | C/A | "
          f"{' | '.join(f'{m} CPU µs/req' for m in MODES)} |")
    print("|---" * (2 * len(MODES) + 3) + "|")
    for build in builds:
        rps = {m: median(build, m, "requests_per_second") for m in MODES}
        cpu = {m: median(build, m, "cpu_us_per_request") for m in MODES}
        print(f"| {build} | {' | '.join(f'{rps[m]:,.0f}' for m in MODES)} | {rps['R'] / rps['A']:.2f} | "
              f"{rps['C'] / rps['A']:.2f} | {' | '.join(f'{cpu[m]:.1f}' for m in MODES)} |")
    print(f"\nmedians of {args.rounds} interleaved rounds of {args.seconds} s each; wrk -t1 -c16 on the same cores")


if __name__ == "__main__":
    main()
