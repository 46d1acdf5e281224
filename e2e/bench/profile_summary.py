"""Sums a `perf report --no-children --sort symbol` listing per component of the echo-server
(the log layer, OpenTelemetry, HTTP, the allocator, the kernel, ...) and lists the top frames.
A frame's component is the first rule its symbol matches, so the order of COMPONENTS matters."""

import re
import sys

COMPONENTS = [
    ("kernel (network, scheduling)", [r"^\[k\]"]),
    ("log layer (tracing-subscriber fmt)", [r"tracing_subscriber::fmt", r"FormattedFields", r"nu_ansi_term",
                                            r"core::fmt", r"alloc::fmt"]),
    ("OpenTelemetry (tracing-opentelemetry, SDK, exporter)", [r"opentelemetry", r"prost", r"SpanData"]),
    ("span registry (tracing-subscriber registry, tracing-core)", [r"tracing_subscriber", r"tracing_core",
                                                                   r"sharded_slab", r"tracing::"]),
    ("metrics (prometheus-client)", [r"prometheus_client"]),
    ("HTTP (hyper, axum, http)", [r"hyper", r"axum", r"http::", r"httparse", r"tower"]),
    ("JSON (serde_json)", [r"serde_json", r"serde::"]),
    ("async runtime (tokio)", [r"tokio"]),
    ("allocator (malloc, free, memcpy)", [r"malloc", r"free", r"realloc", r"memcpy", r"memmove", r"memset",
                                          r"_int_", r"alloc::raw_vec", r"__rust_"]),
    ("this project (echo_operator)", [r"echo_operator"]),
]
LINE = re.compile(r"^\s*([\d.]+)%\s+(\[[.k]\])\s+(.*)$")


def component(symbol):
    for name, patterns in COMPONENTS:
        if any(re.search(p, symbol) for p in patterns):
            return name
    return "other"


def main(path, top=25):
    frames = []
    for line in open(path, encoding="utf-8", errors="replace"):
        if m := LINE.match(line):
            percent, kind, symbol = float(m[1]), m[2], m[3].strip()
            frames.append((percent, f"{kind} {symbol}"))
    if not frames:
        sys.exit(f"no samples in {path}")
    totals = {}
    for percent, symbol in frames:
        totals[component(symbol)] = totals.get(component(symbol), 0.0) + percent
    print("| component | share of samples |\n|---|---|")
    for name, percent in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"| {name} | {percent:.1f} % |")
    print(f"\ntop {top} frames by self time:")
    for percent, symbol in sorted(frames, reverse=True)[:top]:
        print(f"{percent:6.2f} %  {symbol[:150]}")


if __name__ == "__main__":
    main(sys.argv[1])
