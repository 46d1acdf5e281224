"""bench-scale's growth with the machine's speed taken out. On a shared VM the operator's CPU
per reconcile follows the speed probe's reading (speed.py) round by round, and more than in
proportion (docs/performance.md, "The machine's own speed"). So two counts measured at
different speeds differ by the speed as much as by the count. Here
every round of one mode and build is fitted at once by least squares,

    log(CPU per reconcile) = a + k · log(probe) + one step per object count,

and the step of the largest count over the smallest is the change at one speed, with its 95 %
interval (Student's t: a few rounds leave few degrees of freedom). The probe shares the cores
with the harness, whose load may differ by count, so a count's own effect can leak into k:
read the fit beside the medians, not instead of them.

Run as a program, it fits the rounds of one or more bench-scale runs together, per mode:
    target/venv/bin/python e2e/bench/speed_fit.py target/bench-scale/results.json [OTHER/results.json ...]"""

import json
import math
import sys

import numpy

# Two-sided 95 % quantiles of Student's t by degrees of freedom; between two entries the
# smaller number of degrees is taken, which widens the interval, never narrows it.
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
       10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04, 60: 2.00}


def t95(degrees):
    return T95[max(d for d in T95 if d <= degrees)]


def change_at_one_speed(rounds):
    """The fitted change of CPU per reconcile from the smallest object count to the largest,
    from bench-scale rounds (scale_report.row) of one mode and build: a dict of the change,
    its 95 % interval and the exponent k, or None where the rounds cannot carry the fit (no
    probe reading in some round, one count only, or no degree of freedom left)."""
    if not all(r.get("speed_probe_ms") for r in rounds):
        return None  # leaving those rounds out could drop a whole count and compare others
    counts = sorted({r["objects"] for r in rounds})
    columns = 1 + len(counts)  # the constant, log(probe), a step for each count but the smallest
    if len(counts) < 2 or len(rounds) <= columns:
        return None
    design = numpy.array([[1.0, math.log(r["speed_probe_ms"])] + [float(r["objects"] == c) for c in counts[1:]]
                          for r in rounds])
    cpu = numpy.log([r["operator_cpu_ms_per_reconcile"] for r in rounds])
    fit, _, rank, _ = numpy.linalg.lstsq(design, cpu, rcond=None)
    if rank < columns:  # e.g. every round at one probe reading: speed and count not told apart
        return None
    residuals = cpu - design @ fit
    degrees = len(rounds) - columns
    variance = residuals @ residuals / degrees
    error = math.sqrt(variance * numpy.linalg.inv(design.T @ design)[-1, -1])
    step, margin = fit[-1], t95(degrees) * error
    return {"change": math.exp(step) - 1, "low": math.exp(step - margin) - 1, "high": math.exp(step + margin) - 1,
            "speed_exponent": float(fit[1]), "rounds": len(rounds), "counts": (counts[0], counts[-1])}


def main(paths):
    rounds = [r for path in paths for r in json.load(open(path))["per_round"]]
    for mode in sorted({r["mode"] for r in rounds}):
        mine = [r for r in rounds if r["mode"] == mode and r.get("build", "this") == "this"]
        fit = change_at_one_speed(mine)
        if not fit:
            print(f"mode {mode}: no fit ({len(mine)} rounds)")
            continue
        low, high = fit["counts"]
        print(f"mode {mode}: {fit['change']:+.1%} from {low:,} to {high:,} objects at one machine speed "
              f"(95 % interval {fit['low']:+.1%} to {fit['high']:+.1%}; {fit['rounds']} rounds, "
              f"CPU ∝ probe^{fit['speed_exponent']:.2f})")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
