"""The echo service alone under wrk (Debian's package): requests per second and latency
percentiles over loopback, for a bounded time."""

import re
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "echo.lua"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text):
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * UNITS[unit]


def parse(output):
    """Requests/s, latency percentiles (ms) and failed responses from wrk --latency output."""
    result = {"errors": 0}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("Requests/sec:"):
            result["requests_per_second"] = float(line.split()[1])
        elif m := re.fullmatch(r"(50|90|99)(?:\.000)?%\s+(\S+)", line):
            result[f"p{m.group(1)}_ms"] = _ms(m.group(2))
        elif m := re.fullmatch(r"(\d+) requests in .*", line):
            result["requests"] = int(m.group(1))
        elif line.startswith("Non-2xx or 3xx responses:"):
            result["errors"] += int(line.split(":")[1])
        elif line.startswith("Socket errors:"):
            result["errors"] += sum(int(n) for n in re.findall(r"\d+", line))
    if not {"requests_per_second", "p99_ms", "requests"} <= result.keys():
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    return result


def run_wrk(url, seconds, connections=16, threads=1):
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(SCRIPT), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    return parse(output)
