"""The benchmark's picture: for creates and updates, the share of objects Ready within each
latency, one line per mode, every round's objects pooled. Steeper and further left is better;
lines on top of each other mean tracing costs nothing visible."""

import matplotlib

matplotlib.use("Agg")  # no display: write the file only
import matplotlib.pyplot as plt  # noqa: E402

PHASES = ("create", "update")


def cumulative(latencies_ms):
    """(seconds, share of objects Ready by then) for a step plot of sorted latencies."""
    ordered = sorted(latencies_ms)
    return [ms / 1000 for ms in ordered], [(i + 1) / len(ordered) for i in range(len(ordered))]


def plot(results, path):
    modes = results["modes"]  # programs.MODES, as bench.py records it in the results
    figure, axes = plt.subplots(1, len(PHASES), figsize=(11, 4.2), sharey=True)
    for axis, phase in zip(axes, PHASES):
        for mode in modes:
            latencies = [ms for r in results["rounds"] if r["mode"] == mode for ms in r[phase]["latencies_ms"]]
            if latencies:
                seconds, share = cumulative(latencies)
                axis.step(seconds, share, where="post", label=f"{mode}: {modes[mode]}")
        axis.set_title(f"{phase}: request sent to Ready seen")
        axis.set_xlabel("seconds")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("share of objects Ready")
    axes[0].legend(loc="lower right", fontsize=7)
    rounds = len([r for r in results["rounds"] if r["mode"] == "A"])
    rounds_text = f"{rounds} round{'s' * (rounds != 1)}"
    figure.suptitle(f"{results['objects']} Echo objects per round, {rounds_text} per mode, pooled")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
