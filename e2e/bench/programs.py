"""The operator and the echo-server as the benchmark runs them: started fresh for every round
with the telemetry settings of its mode, measured from /proc, stopped before the next."""

import argparse
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from e2elib.metrics import metric_sum
from e2elib.polling import TimedOut, eventually
from e2elib.ports import free_ports

# Mode -> what it means; the letters are the and the report's.
MODES = {
    "A": "tracing off (OTEL_SDK_DISABLED=true, no endpoint)",
    "B": "tracing on, 100% sampled, exporting to Jaeger",
    "C": "tracing on, collector unreachable (closed port)",
    # What recording costs without the export (and the collector's CPU) behind it.
    "R": "tracing on, 100% sampled, recorded but not exported (no endpoint)",
}

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    return free_ports(1)[0]


# deploy/30-operator.yaml's OTEL_BSP_MAX_EXPORT_BATCH_SIZE.
OPERATOR_EXPORT_BATCH = 256


def telemetry_env(mode, endpoint, protocol, closed_port, batch_size=None):
    """The OTEL_* variables of a mode. B and C differ only in where the exporter points; the
    0.5 s batch delay is deploy/'s (the SDK's default of 5 s delays every trace by that), and
    so is `batch_size`, the spans per export (OPERATOR_EXPORT_BATCH, the operator's only)."""
    if mode == "A":
        return {"OTEL_SDK_DISABLED": "true"}
    if mode == "R":
        return {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    target = endpoint if mode == "B" else f"127.0.0.1:{closed_port}"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{target}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }
    if batch_size is not None:
        env["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = str(batch_size)
    return env


# The harness's OTLP receivers (the variables e2e/up exports), by the protocol an exporter
# speaks to them.
OTLP_ENDPOINTS = {"grpc": "E2E_OTLP_GRPC", "http/protobuf": "E2E_OTLP_HTTP"}


def add_operator_options(parser):
    """The options that change the operator's telemetry, to compare a setting side by side
    (run the benchmark with and without it): `--operator-env NAME=VALUE`, a variable added to
    its environment in every mode, and `--operator-protocol`, its exporter's protocol."""

    def pair(text):
        name, sep, value = text.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
        return name, value

    parser.add_argument("--operator-env", metavar="NAME=VALUE", type=pair, action="append", default=[],
                        help="one more variable in the operator's environment, in every mode (repeatable)")
    parser.add_argument("--operator-protocol", choices=sorted(OTLP_ENDPOINTS), default="grpc",
                        help="the operator's OTLP protocol in modes B and C (default grpc, as deploy/)")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def cpu_seconds(pid):
    """User plus system CPU time of a process so far."""
    return sum(user_and_system_seconds(pid))


def user_and_system_seconds(pid):
    """A process's CPU time so far in its own code and in the kernel on its behalf (system
    calls, wake-ups, page faults), from one read."""
    return _stat_user_and_system(Path(f"/proc/{pid}/stat").read_text())


def _stat_cpu_seconds(stat):
    return sum(_stat_user_and_system(stat))


def _stat_user_and_system(stat):
    """User and system CPU time in a /proc stat line (fields 14 and 15; the command name
    before them is in parentheses and may hold spaces)."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


# The SDK's batch span processor thread as the kernel names it (15 characters): it runs
# opentelemetry-otlp's copy and conversion of each batch; the transport runs on tokio's workers.
EXPORT_THREAD = "OpenTelemetry.T"


def export_thread_seconds(by_thread):
    """The export thread's CPU seconds in `cpu_seconds_by_thread`'s answer (0 when tracing is off)."""
    return by_thread.get(EXPORT_THREAD, 0.0)


def cpu_seconds_by_thread(pid):
    """User plus system CPU time so far of each live thread of a process, summed by thread
    name (the kernel keeps 15 characters: the SDK's `OpenTelemetry.Traces.BatchProcessor` is
    `OpenTelemetry.T`, tokio's workers `tokio-runtime-w`)."""
    by_name = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            stat = (task / "stat").read_text()
        except OSError:  # the thread ended between the listing and the read
            continue
        by_name[name] = by_name.get(name, 0.0) + _stat_cpu_seconds(stat)
    return by_name


def harness_cpu(state_dir, names=("kube-apiserver", "etcd", "jaeger")):
    """CPU seconds so far of the harness's own processes (e2e/up records their pids; each
    command execs the program, so the pid is the program's)."""
    return {name: cpu_seconds(int(Path(state_dir, "pids", f"{name}.pid").read_text())) for name in names}


def steal_seconds(stat_path="/proc/stat"):
    """CPU seconds so far, all CPUs together, in which this VM's vCPUs wanted to run and the
    hypervisor ran something else (the `steal` column of /proc/stat; 0 where there is none)."""
    with open(stat_path) as stat:
        fields = stat.readline().split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice
    return int(fields[8]) / CLOCK_TICKS if fields[:1] == ["cpu"] and len(fields) > 8 else 0.0


def settle(state_dir, busy_cores=0.1, timeout=60):
    """Waits until the harness is idle (its processes use under `busy_cores` over a second),
    for at most `timeout` seconds: after the reconcile rounds the API server and etcd are
    still deleting the last namespace, which would slow the first load run alone."""

    def idle():
        before = sum(harness_cpu(state_dir).values())
        time.sleep(1)
        return sum(harness_cpu(state_dir).values()) - before < busy_cores

    try:
        return eventually("the harness idle", idle, timeout=timeout, interval=0)
    except TimedOut:
        return False


class Program:
    """One process in its own session, its output in a log file."""

    def __init__(self, name, argv, env, log_path):
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, url, timeout=60, ready=lambda body: True):
        def answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            return ready(http_get(url))

        try:
            eventually(f"{self.name} ready at {url}", answers, timeout=timeout, interval=0.2, retrying=(OSError,))
        except TimedOut as error:
            self.stop()
            raise RuntimeError(f"{error}; see {self.log_path}") from None

    def cpu_seconds(self):
        return cpu_seconds(self.process.pid)

    def user_and_system_seconds(self):
        return user_and_system_seconds(self.process.pid)

    def cpu_seconds_by_thread(self):
        return cpu_seconds_by_thread(self.process.pid)

    def peak_rss_mib(self):
        """The kernel's high-water mark of resident memory (VmHWM) since the process started."""
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmHWM for {self.name}")

    def stop(self, grace=10):
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


class CpuSeries:
    """A program's CPU time once a second beside a count of work done, on a thread of its own:
    a round's cost per unit of work over time, where a warm-up or a slower spell shows."""

    def __init__(self, program, done, interval=1.0):
        self.points = []  # (CLOCK_MONOTONIC seconds, user seconds, system seconds, done)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(program, done, interval), daemon=True)
        self._thread.start()

    def _sample(self, program, done, interval):
        while not self._stopped.wait(interval):
            try:
                user, system = program.user_and_system_seconds()
            except OSError:  # the program ended
                return
            self.points.append((time.monotonic(), user, system, done()))

    def stop(self):
        """Stops sampling and returns the points; none is added after it returns."""
        self._stopped.set()
        self._thread.join()
        return self.points


def span_counters(metrics_url, prefix):
    """The program's own counts of spans ended, exported and refused by the collector
    (`PREFIX_otel_spans_*_total`); ended minus exported is what was dropped or refused."""
    text = http_get(metrics_url)
    return {k: metric_sum(text, f"{prefix}_otel_spans_{k}_total") for k in ("ended", "exported", "export_failed")}

