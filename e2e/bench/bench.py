#!/usr/bin/env python3
"""What tracing costs the operator, measured side by side on the loopback harness (e2e/up
with E2E_APPS=0: etcd, kube-apiserver, Jaeger). Every round starts a fresh operator and
echo-server in one of four modes (A tracing off, B exporting, C collector unreachable, R
recorded but not exported), interleaved A B C R A B C R …, and in a fresh namespace:

  create  N Echo objects concurrently, until every one is Ready at generation 1
  update  every object's spec once, until every one is Ready at generation 2
  delete  every object, until every one is gone (finalizer removed)

A phase sends its requests on 16 clients as fast as the API server takes them, or at a set
pace (--rate; bench-scale sends 100 a second). Latency is by this program's clock: from
sending an object's request to seeing, in a watch, status.observedGeneration ==
metadata.generation with Ready=True. In mode B every create and
update trace (status.traceId) is fetched from Jaeger and checked whole. Each round also keeps
the operator's CPU per phase and second by second, and a speed probe's readings beside it
(speed.py): the machine's own speed while the round ran. Then the echo-server
alone is loaded with wrk, interleaved: tracing off, spans recorded but not exported,
exporting to a closed port and exporting to Jaeger. Writes JSON, Markdown and a PNG."""

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from api_writes import phase_writes, write_counts
from kube_api import GROUP, ApiError, KubeApi
from load import run_wrk
from paced import fan_out, sending_rate
from plot import plot
from programs import MODES, OPERATOR_EXPORT_BATCH, OTLP_ENDPOINTS, CpuSeries, Program, add_operator_options, export_thread_seconds, free_port, harness_cpu, http_get, settle, span_counters, steal_seconds, telemetry_env
from report import LOAD_MODES, markdown, percentile, summarise
from speed import readings
from traces import EXPECTED, TraceChecker

from e2elib.metrics import metric_sum
from e2elib.polling import TimedOut, eventually

ROOT = Path(__file__).resolve().parents[2]
VISIBILITY_SAMPLE = 20  # objects per B round whose time to show up in Jaeger is measured
NAMESPACE_GONE_SECONDS = 300  # how long a round waits for its namespace's deletion


def ready_true(status):
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


class Tracker:
    """Watches one namespace's Echo objects and notes, by time.monotonic(), when each became
    Ready at each generation (with the trace its status names) and when it was gone."""

    def __init__(self, api, namespace, on_ready=None):
        self.ready = {}  # (name, generation) -> (seen at, status.traceId)
        self.gone = {}  # name -> seen at
        self.on_ready = on_ready
        self.error = None
        self.changed = threading.Condition()
        self.stop = threading.Event()
        path = f"{GROUP}/namespaces/{namespace}/echoes"
        version = api.request("GET", path)["metadata"]["resourceVersion"]
        self.thread = threading.Thread(target=self._watch, args=(api, path, version), daemon=True)
        self.thread.start()

    def _watch(self, api, path, version):
        try:
            api.watch(path, version, self._event, self.stop)
        except Exception as error:  # reported by wait(), which the main thread is in
            self.error = error
            with self.changed:
                self.changed.notify_all()

    def _event(self, kind, obj):
        now = time.monotonic()
        name, generation = obj["metadata"]["name"], obj["metadata"].get("generation")
        status = obj.get("status") or {}
        with self.changed:
            if kind == "DELETED":
                self.gone.setdefault(name, now)
            elif status.get("observedGeneration") == generation and ready_true(status):
                if (name, generation) not in self.ready:
                    self.ready[(name, generation)] = (now, status.get("traceId"))
                    if self.on_ready:
                        self.on_ready(name, generation, now, status.get("traceId"))
            self.changed.notify_all()

    def wait(self, what, done, timeout):
        with self.changed:
            if not self.changed.wait_for(lambda: self.error or done(), timeout):
                raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        if self.error:
            raise RuntimeError(f"the watch failed: {self.error}")

    def close(self):
        self.stop.set()


def phase_result(sent, finished, started, reconciles, operator_cpu):
    """A phase's figures; `operator_cpu` is the operator's (user, system) seconds in it."""
    seconds = max(finished[n] for n in sent) - started
    latencies = [(finished[n] - sent[n]) * 1000 for n in sent]
    user, system = operator_cpu
    return {
        "seconds": seconds,
        "operator_user_cpu_seconds": user,
        "operator_system_cpu_seconds": system,
        "objects_per_second": len(sent) / seconds,
        "reconciles_per_second": reconciles / seconds,
        "reconciles": reconciles,
        "sent_per_second": sending_rate(sent),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        # Every object's, for the plot (plot.py).
        "latencies_ms": sorted(round(ms, 1) for ms in latencies),
    }


class Bench:
    def __init__(self, args):
        self.args = args
        self.api = KubeApi(os.environ["KUBECONFIG"])
        self.checker = TraceChecker(os.environ["JAEGER_URL"])
        self.bin = Path(args.bin_dir)
        self.state = os.environ["E2E_STATE_DIR"]
        self.logs = Path(args.out) / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pool = concurrent.futures.ThreadPoolExecutor(args.clients)
        # One thread per sampled object, so that no poll waits for a free worker.
        self.watchers = concurrent.futures.ThreadPoolExecutor(VISIBILITY_SAMPLE + 1)

    def start_echo_server(self, mode, label):
        port = free_port()
        # The store's budgets (10,000 echoes, 5,000 a namespace) are a deployment's; a round
        # holds all its objects in one namespace.
        room = max(10_000, self.args.objects)
        env = {
            "RUST_LOG": "info",
            "ECHO_MAX_ENTRIES": str(room),
            "ECHO_MAX_ENTRIES_PER_NAMESPACE": str(room),
            "OTEL_RESOURCE_ATTRIBUTES": f"k8s.namespace.name=echo-tracing,k8s.pod.name=echo-server-{label}",
            **telemetry_env(mode, os.environ[OTLP_ENDPOINTS["http/protobuf"]], "http/protobuf", free_port()),
        }
        program = Program(
            f"echo-server {label}",
            [str(self.bin / "echo-server"), "--listen", f"127.0.0.1:{port}"],
            env,
            self.logs / f"echo-server-{label}.log",
        )
        url = f"http://127.0.0.1:{port}"
        program.wait_ready(f"{url}/healthz")
        return program, url

    def start_operator(self, mode, label, echo_url):
        port = free_port()
        env = {
            "KUBECONFIG": os.environ["E2E_OPERATOR_KUBECONFIG"],
            "POD_NAME": f"operator-{label}",
            "POD_NAMESPACE": "echo-tracing",
            "RUST_LOG": "info",
            "OTEL_RESOURCE_ATTRIBUTES": f"k8s.namespace.name=echo-tracing,k8s.pod.name=operator-{label}",
            **telemetry_env(mode, os.environ[OTLP_ENDPOINTS[self.args.operator_protocol]],
                            self.args.operator_protocol, free_port(), OPERATOR_EXPORT_BATCH),
            **dict(self.args.operator_env),
        }
        program = Program(
            f"operator {label}",
            [str(self.bin / "operator"), "--echo-url", echo_url, "--health-listen", f"127.0.0.1:{port}"],
            env,
            self.logs / f"operator-{label}.log",
        )
        url = f"http://127.0.0.1:{port}"
        # Ready, and holding the Lease: the previous round's replica released it on SIGTERM.
        program.wait_ready(f"{url}/metrics", ready=lambda text: metric_sum(text, "echo_operator_leader") == 1)
        return program, url

    def run_round(self, mode, index):
        n, label = self.args.objects, f"{index}-{mode.lower()}"
        namespace = f"bench-{label}"
        self.api.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": namespace}})
        names = [f"echo-{i:05d}" for i in range(n)]
        path = f"{GROUP}/namespaces/{namespace}/echoes"
        sample = set(names[:: max(1, n // VISIBILITY_SAMPLE)][:VISIBILITY_SAMPLE])
        visibility = []

        def on_ready(name, generation, at, trace_id):
            if mode == "B" and generation == 1 and name in sample and trace_id:
                visibility.append(self.watchers.submit(self.checker.seconds_until_complete, trace_id, at))

        echo, echo_url = self.start_echo_server(mode, label)
        try:
            operator, operator_url = self.start_operator(mode, label, echo_url)
        except BaseException:
            echo.stop()
            raise
        timeout = max(120, n // 2)
        result = {"mode": mode, "round": index, "namespace": namespace, "errors": []}
        recorder = probe = series = tracker = None
        try:
            recorder = self.record_with_perf(operator, label)
            probe = Program(f"speed probe {label}", [sys.executable, str(Path(__file__).with_name("speed.py"))],
                            {}, self.logs / f"speed-{label}.log")
            harness_before, steal_before = harness_cpu(self.state), steal_seconds()
            round_started = time.monotonic()
            series = CpuSeries(operator, lambda: len(tracker.ready) + len(tracker.gone) if tracker else 0)
            tracker = Tracker(self.api, namespace, on_ready)

            def reconciles(**labels):
                return metric_sum(http_get(f"{operator_url}/metrics"), "echo_operator_reconciles_total", **labels)

            def measure(phase, request, done):
                before, writes_before = reconciles(), write_counts(self.api)
                cpu_before = operator.user_and_system_seconds()
                started = time.monotonic()
                sent, errors = fan_out(self.pool, request, names, self.args.rate)
                result["errors"] += [f"{phase}: {e}" for e in errors]
                tracker.wait(f"{phase} of {n} objects", lambda: done(sent), timeout)
                cpu = [after - before for after, before in zip(operator.user_and_system_seconds(), cpu_before)]
                count = reconciles() - before
                time.sleep(1)  # an Event follows its object's status write
                result.setdefault("api_writes_per_object", {})[phase] = phase_writes(
                    writes_before, write_counts(self.api), phase, n)
                return sent, started, count, cpu

            def create(name):
                body = {"apiVersion": "tracing.example.com/v1alpha1", "kind": "Echo",
                        "metadata": {"name": name}, "spec": {"message": f"created {name}"}}
                self.api.request("POST", path, body)

            def update(name):
                self.api.request("PATCH", f"{path}/{name}", {"spec": {"message": f"updated {name}"}},
                                 "application/merge-patch+json")

            for phase, request, generation in (("create", create, 1), ("update", update, 2)):
                sent, started, count, cpu = measure(
                    phase, request, lambda sent, g=generation: all((x, g) in tracker.ready for x in sent))
                finished = {x: tracker.ready[(x, generation)][0] for x in sent}
                result[phase] = phase_result(sent, finished, started, count, cpu)

            sent, started, count, cpu = measure(
                "delete", lambda name: self.api.request("DELETE", f"{path}/{name}"),
                lambda sent: all(x in tracker.gone for x in sent))
            result["delete"] = phase_result(sent, tracker.gone, started, count, cpu)
            result["reconcile_errors"] = reconciles(result="error")

            # CPU and counters before the trace check below: its 2,000 queries to Jaeger and
            # the seconds they take are the benchmark's work, not what tracing costs.
            time.sleep(1.5)  # the last batch (0.5 s delay) leaves before the counters are read
            for program, url, prefix, key in ((operator, operator_url, "echo_operator", "operator"),
                                              (echo, echo_url, "echo_server", "echo_server")):
                by_thread = program.cpu_seconds_by_thread()
                user, system = program.user_and_system_seconds()
                result[key] = {"cpu_seconds": user + system, "system_cpu_seconds": system,
                               "peak_rss_mib": program.peak_rss_mib(),
                               "cpu_seconds_by_thread": by_thread,
                               "export_thread_cpu_seconds": export_thread_seconds(by_thread),
                               "spans": span_counters(f"{url}/metrics", prefix)}
            result["operator"]["cpu_series"] = series.stop()
            result["harness_cpu_seconds"] = {k: v - harness_before[k] for k, v in harness_cpu(self.state).items()}
            # Whether the host took this VM's cores away during the round (the rounds' spread).
            result["steal_seconds"] = steal_seconds() - steal_before
            # The machine's speed while the round ran: the probe's median over the round.
            probe.stop()
            speeds = readings(probe.log_path.read_text().splitlines(), round_started, time.monotonic())
            result["speed_probe_ms"] = statistics.median(speeds) if speeds else None

            if mode == "B":
                trace_ids = [t for (_, _), (_, t) in tracker.ready.items() if t]
                expected, found, incomplete = self.checker.completeness(trace_ids)
                result["traces"] = {"checked": len(trace_ids), "spans_expected": expected, "spans_found": found,
                                    "incomplete": dict(list(incomplete.items())[:20])}
                if len(trace_ids) != 2 * n:
                    result["errors"].append(f"{2 * n - len(trace_ids)} Ready statuses named no trace")
                seconds = [f.result() for f in visibility]
                result["seconds_to_jaeger"] = [s for s in seconds if s is not None]
                if None in seconds:
                    result["errors"].append(f"{seconds.count(None)} sampled traces never complete in Jaeger")
        finally:
            if series:
                series.stop()
            if tracker:
                tracker.close()
            operator.stop()
            if probe:
                probe.stop()
            if recorder:
                recorder.wait(30)  # perf stops when the operator exits
            echo.stop()
            self.api.request("DELETE", f"/api/v1/namespaces/{namespace}")
            result["seconds_until_namespace_gone"] = self.wait_until_gone(f"/api/v1/namespaces/{namespace}")
        return result

    def wait_until_gone(self, path):
        """Seconds until `path` is gone, or None after NAMESPACE_GONE_SECONDS. The next round
        must not start while the namespace controller deletes this one's objects and Events
        (30,000 at 10,000 objects) on the same two cores, or it measures some of that work
        too. Waiting is the benchmark's method, so a namespace that stays is said loudly, not
        failed."""

        def gone():
            try:
                self.api.request("GET", path)
            except ApiError as e:
                if e.status == 404:
                    return True
                raise
            return False

        started = time.monotonic()
        try:
            eventually(f"{path} gone", gone, timeout=NAMESPACE_GONE_SECONDS, interval=0.5)
        except TimedOut:
            print(f"bench: WARNING: {path} still there after {NAMESPACE_GONE_SECONDS} s; the next round "
                  "starts beside its deletion", file=sys.stderr)
            return None
        except ApiError as e:
            print(f"bench: WARNING: cannot tell whether {path} is gone: {e}", file=sys.stderr)
            return None
        return time.monotonic() - started

    def record_with_perf(self, operator, label):
        """With --perf DIR: perf samples this round's operator until it exits, into
        DIR/operator-LABEL.data (e2e/bench/profile_operator.py sums it per component)."""
        if not self.args.perf:
            return None
        Path(self.args.perf).mkdir(parents=True, exist_ok=True)
        data = Path(self.args.perf, f"operator-{label}.data")
        return subprocess.Popen(["perf", "record", "--quiet", "-F", "999", "-p", str(operator.process.pid),
                                 "-o", str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def echo_load(self):
        """wrk against the echo-server alone, interleaved: off (A), recorded only (R), exporting
        to a closed port (C: the server's whole cost, no collector on these cores) and to
        Jaeger (B: Jaeger's ingestion shares the cores)."""
        runs = []
        if not settle(self.state):
            print("bench: the harness is still busy after 60 s; loading the echo-server anyway", file=sys.stderr)
        for index in range(1, self.args.load_rounds + 1):
            for mode in LOAD_MODES:
                program, url = self.start_echo_server(mode, f"load-{index}-{mode.lower()}")
                try:
                    jaeger_before = harness_cpu(self.state, ["jaeger"])["jaeger"]
                    run = run_wrk(url, self.args.load_seconds)
                    cpu = program.cpu_seconds()
                    time.sleep(1.5)  # the last batch leaves before the span counters are read
                    run["spans"] = span_counters(f"{url}/metrics", "echo_server")
                    run.update(mode=mode, round=index, cpu_seconds=cpu, peak_rss_mib=program.peak_rss_mib(),
                               cpu_us_per_request=cpu / run["requests"] * 1e6,
                               jaeger_cpu_seconds=harness_cpu(self.state, ["jaeger"])["jaeger"] - jaeger_before)
                    runs.append(run)
                    print(f"bench: echo load {mode} round {index}: {run['requests_per_second']:.0f} req/s, "
                          f"p99 {run['p99_ms']:.2f} ms", file=sys.stderr)
                finally:
                    program.stop()
        return runs


def add_round_options(parser, rate):
    """How a round sends its requests: how many at once, and at what pace (`rate`: the default)."""
    parser.add_argument("--clients", type=int, default=16, help="concurrent API requests (default 16)")
    parser.add_argument("--rate", type=float, default=rate,
                        help="requests per second in each phase, at every object count "
                             f"(default {rate or 'none: as fast as the API server takes them'})")


def machine():
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.machine())
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "cpu": model,
            "kernel": platform.release()}


def problems(results):
    """What went wrong, as opposed to what was slow: the smoke run fails on any of these."""
    found = []
    for r in results["rounds"]:
        where = f"round {r['round']} mode {r['mode']}"
        found += [f"{where}: {e}" for e in r["errors"]]
        if r.get("reconcile_errors"):
            found.append(f"{where}: {r['reconcile_errors']:.0f} reconciles failed")
        traces = r.get("traces")
        if traces and traces["spans_found"] != traces["spans_expected"]:
            found.append(f"{where}: {traces['spans_expected'] - traces['spans_found']} spans missing from Jaeger: "
                         f"{traces['incomplete']}")
    for run in results["echo_load"]:
        if run["errors"]:
            found.append(f"echo load {run['mode']} round {run['round']}: {run['errors']} failed requests")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000, help="Echo objects per round (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of A B C R (default 3)")
    parser.add_argument("--modes", default="".join(MODES), help="the modes of each round, in order (default ABCR)")
    add_round_options(parser, rate=None)
    parser.add_argument("--load-seconds", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--load-rounds", type=int, default=3, help="rounds of wrk in A R C B (default 3)")
    parser.add_argument("--bin-dir", default=str(ROOT / "target" / "release"))
    parser.add_argument("--out", default=str(ROOT / "target" / "bench"))
    parser.add_argument("--perf", metavar="DIR",
                        help="sample each round's operator with perf into DIR (a profile, not a benchmark)")
    add_operator_options(parser)
    args = parser.parse_args()

    bench = Bench(args)
    results = {"machine": machine(), "objects": args.objects, "rounds": [], "modes": MODES,
               "operator_env": dict(args.operator_env), "operator_protocol": args.operator_protocol,
               "binaries": args.bin_dir, "expected_spans_per_trace": list(EXPECTED)}
    for index in range(1, args.rounds + 1):
        for mode in args.modes:
            print(f"bench: round {index} mode {mode} ({MODES[mode]}), {args.objects} objects", file=sys.stderr)
            r = bench.run_round(mode, index)
            results["rounds"].append(r)
            print(f"bench:   create {r['create']['seconds']:.1f}s, update {r['update']['seconds']:.1f}s, "
                  f"delete {r['delete']['seconds']:.1f}s, operator peak RSS {r['operator']['peak_rss_mib']:.1f} MiB",
                  file=sys.stderr)
    results["echo_load"] = bench.echo_load()
    results["summary"] = summarise(results)
    results["problems"] = problems(results)

    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (out / "results.md").write_text(table)
    plot(results, out / "latency.png")
    print(table)
    print(f"bench: results in {out / 'results.json'}, {out / 'results.md'} and {out / 'latency.png'}",
          file=sys.stderr)
    if results["problems"]:
        print("bench: FAILED:\n  " + "\n  ".join(results["problems"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
