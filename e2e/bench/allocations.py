"""How many heap allocations a reconcile makes, and where, at each object count
(e2e/bench/count-allocations, make profile-allocations): reads heaptrack's recording of every
round's operator, divides by that round's reconciles, and attributes each allocation to the
innermost frame of this project's code on its stack (and the call it made there), so that a
site that allocates more per reconcile at a larger count shows.

    allocations.py DIR

DIR holds scale.py's results.json and heaptrack/*.gz, one recording per round, named so that
they sort in the order the rounds ran. Prints a markdown table and writes DIR/allocations.md."""

import json
import re
import subprocess
import sys
from pathlib import Path

PROJECT = "echo_operator::"
OUTSIDE = "(outside this project's code: watch stream, HTTP, runtime)"


def readable(frame):
    """A frame as heaptrack prints a Rust symbol, made short and legible: no hash suffix,
    no `$LT$`-style escapes."""
    frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
    for escaped, plain in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","), ("$RF$", "&"),
                           ("$u7b$$u7b$closure$u7d$$u7d$", "{closure}"), ("..", "::")):
        frame = frame.replace(escaped, plain)
    return frame.lstrip("_")


def sites(collapsed):
    """Allocations by site in heaptrack's collapsed stacks (`frame;frame;... COUNT`, root
    first): the innermost frame of this project's code and the call it made from there."""
    counts = {}
    for line in collapsed.splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [readable(f) for f in stack.split(";")]
        ours = [i for i, f in enumerate(frames) if PROJECT in f]
        if ours:
            inner = ours[-1]
            callee = frames[inner + 1] if inner + 1 < len(frames) else "(itself)"
            site = f"{frames[inner]} → {callee}"
        else:
            site = OUTSIDE
        counts[site] = counts.get(site, 0) + int(count)
    return counts


def per_reconcile(counts, reconciles):
    if reconciles <= 0:
        raise ValueError("a round without reconciles has no allocations per reconcile")
    return {site: n / reconciles for site, n in counts.items()}


PEAK_HEAP = re.compile(r"^peak heap memory consumption: (\S+)", re.MULTILINE)


def peak_heap(summary):
    """The peak of live heap bytes in heaptrack_print's summary, as it prints it ("5.31M")."""
    found = PEAK_HEAP.search(summary)
    return found[1] if found else "?"


def table(columns, peaks=None, top=15):
    """Markdown: total allocations per reconcile for each column (object count), the peak
    heap if given, then the `top` sites by their largest figure in any column."""
    names = list(columns)
    lines = ["| allocations per reconcile | " + " | ".join(names) + " |",
             "|---|" + "---|" * len(names),
             "| **all** | " + " | ".join(f"**{sum(columns[n].values()):.1f}**" for n in names) + " |"]
    if peaks:
        lines.append("| peak heap (not per reconcile) | " + " | ".join(peaks[n] for n in names) + " |")
    every = {site for column in columns.values() for site in column}
    for site in sorted(every, key=lambda s: -max(c.get(s, 0.0) for c in columns.values()))[:top]:
        lines.append(f"| `{site[:200]}` | " + " | ".join(f"{columns[n].get(site, 0.0):.1f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def read_recording(recording):
    """heaptrack_print's collapsed stacks of allocation calls, and its summary."""
    out = recording.with_suffix(".stacks")
    summary = subprocess.run(["heaptrack_print", "-f", str(recording), "--flamegraph-cost-type", "allocations",
                              "-F", str(out)], capture_output=True, text=True, errors="replace", check=True).stdout
    return out.read_text(errors="replace"), summary


def main():
    directory = Path(sys.argv[1])
    rounds = json.loads((directory / "results.json").read_text())["per_round"]
    recordings = sorted((directory / "heaptrack").glob("*.gz"))
    if len(recordings) != len(rounds):
        sys.exit(f"allocations: {len(recordings)} heaptrack recordings for {len(rounds)} rounds in {directory}")
    columns, peaks = {}, {}
    for r, recording in zip(rounds, recordings):
        reconciles = round(r["reconciles_per_object"] * r["objects"])
        label = f"{r['objects']:,} objects, mode {r['mode']}"
        stacks, summary = read_recording(recording)
        columns[label] = per_reconcile(sites(stacks), reconciles)
        peaks[label] = peak_heap(summary)
    text = table(columns, peaks)
    (directory / "allocations.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
