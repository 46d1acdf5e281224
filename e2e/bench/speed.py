"""How fast this machine is right now: a fixed piece of work, timed in the CPU time of the
thread that does it, once a second. On this shared VM the same benchmark round has taken 1.7
times the CPU at one hour as at another, in the operator and the API server alike
(docs/performance.md); bench-scale runs this beside each round so that a count's figure can be
read against the machine's speed while it was measured, not against another round's.

Run as a child process (`python3 speed.py`): it prints one line per piece of work,
"<CLOCK_MONOTONIC seconds> <milliseconds of thread CPU time>", until it is stopped."""

import hashlib
import time

# About 10 ms of CPU at this VM's best: hashing (C, memory-bound) and a dictionary loop
# (the interpreter, allocation-heavy), so neither cache nor branch behaviour alone decides.
BUFFER = bytes(range(256)) * 32768  # 8 MiB
LOOP = 80_000
INTERVAL = 1.0


def work():
    """The fixed piece of work; returns something so that nothing is optimised away."""
    digest = hashlib.sha256(BUFFER).digest()
    table = {}
    for i in range(LOOP):
        table[i % 997] = str(i)
    return digest, len(table)


def timed_ms():
    """Thread CPU time of one piece of work, in ms: time spent waiting for a core is not in it."""
    start = time.thread_time()
    work()
    return (time.thread_time() - start) * 1e3


def readings(lines, since, until):
    """The probe's milliseconds read between two CLOCK_MONOTONIC instants, from its output."""
    found = []
    for line in lines:
        at, _, ms = line.partition(" ")
        try:
            at, ms = float(at), float(ms)
        except ValueError:
            continue  # a line cut short when the probe was stopped
        if since <= at <= until:
            found.append(ms)
    return found


def main():
    while True:
        print(f"{time.monotonic():.3f} {timed_ms():.3f}", flush=True)
        time.sleep(INTERVAL)


if __name__ == "__main__":
    main()
