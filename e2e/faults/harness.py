"""The fault tests' handle on the loopback harness: stop, kill, pause and restart its
processes (through e2e/lib/proc), read the operators' metrics and the echo service's state."""

import json
import os
import re
import shlex
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from e2elib.metrics import metric_sum
from e2elib.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
OPERATORS = ("operator", "operator-2")
# POD_NAME of each replica, as e2e/up starts them; the Lease names its holder by it.
POD_NAMES = {"echo-operator-e2e": "operator", "echo-operator-e2e-2": "operator-2"}
LEASE = ("echo-tracing", "echo-operator")
# Each replica's own TCP proxy to the API server (E2E_API_PROXY=1 in e2e/run --faults).
API_PROXIES = {"operator": "api-proxy", "operator-2": "api-proxy-2"}
# LEASE_DURATION_SECONDS in e2e/run --faults, and the retry period (a fifth of it): a follower
# times the holder's Lease on its own clock from when it saw it, up to one retry period late.
LEASE_SECONDS = 20
RETRY_SECONDS = LEASE_SECONDS / 5
ECHO_ROUTE = "PUT /v1/echoes/{namespace}/{name}"


def other(name):
    return next(o for o in OPERATORS if o != name)


def _get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


class Harness:
    def __init__(self, kubectl):
        self.kubectl = kubectl
        self.state = Path(os.environ["E2E_STATE_DIR"])
        self.echo_url = os.environ["E2E_ECHO_URL"]
        urls = os.environ["E2E_OPERATOR_URLS"].split()
        self.operator_urls = dict(zip(OPERATORS, urls))

    # Processes -------------------------------------------------------------------------

    def proc(self, action, name, env=None):
        """e2e/lib/proc ACTION NAME; `env` reaches a started process (beside its recorded
        command's own settings, which win)."""
        result = subprocess.run(
            [str(ROOT / "e2e" / "lib" / "proc"), action, name],
            env=dict(os.environ, E2E_STATE_DIR=str(self.state), **(env or {})),
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0 or action == "pid", f"proc {action} {name}: {result.stderr}"
        return result.stdout.strip()

    def pid(self, name):
        found = self.proc("pid", name)
        return int(found) if found else None

    def rss_kib(self, name):
        """Resident memory of the process, from /proc."""
        status = Path(f"/proc/{self.pid(name)}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)[1])

    def start_operator(self, name, env=None, args=(), ready=True):
        """Starts a replica and (with `ready`) waits until it is ready; `args` are added to
        its recorded command line for this start only (flags win over the command's own
        environment)."""
        command = self.state / "cmd" / name
        recorded = command.read_text()
        if args:
            command.write_text(recorded.rstrip("\n") + "".join(f" {shlex.quote(a)}" for a in args) + "\n")
        try:
            self.proc("start", name, env)
            eventually(f"{name} answering", lambda: self.healthz(name) is not None, timeout=60)
        finally:
            command.write_text(recorded)
        if ready:
            eventually(f"{name} ready", lambda: self._ready(name), timeout=60)

    def restart_operators(self, env=None, args=(), ready=True):
        """Both replicas stopped, then started again with `env` and `args` (none: as
        recorded)."""
        for name in OPERATORS:
            self.proc("stop", name)
        for name in OPERATORS:
            self.start_operator(name, env, args, ready)

    def _ready(self, name):
        try:
            return _get(self.operator_urls[name] + "/readyz") is not None
        except OSError:
            return False

    # Operators -------------------------------------------------------------------------

    def metric(self, name, metric, **labels):
        """The sum of `metric` over the series that carry `labels`."""
        return metric_sum(_get(self.operator_urls[name] + "/metrics"), metric, **labels)

    def lease_holder(self):
        lease = self.kubectl.json("get", "lease", LEASE[1], "-n", LEASE[0])
        return POD_NAMES.get(lease["spec"].get("holderIdentity"))

    def leader(self, timeout=30):
        """The replica that holds the Lease and says it leads (its `leader` gauge)."""
        def current():
            holder = self.lease_holder()
            if holder and self.pid(holder) and self.metric(holder, "echo_operator_leader") == 1:
                return holder
            return None
        return eventually("a leader", current, timeout=timeout)

    # The API server, as each replica's api-proxy sees it ---------------------------------

    def api_requests(self, replica):
        """Every request the replica sent to the API server, oldest first: dicts of method,
        path, headers (and `stalled` for those held)."""
        record = self.state / "logs" / f"{API_PROXIES[replica]}.requests.jsonl"
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]

    def stall_api(self, pattern):
        """Both api-proxies hold every request whose "METHOD path?query" matches `pattern`
        until release_api()."""
        for proxy in API_PROXIES.values():
            (self.state / f"{proxy}.stall").write_text(pattern)

    def release_api(self):
        for proxy in API_PROXIES.values():
            (self.state / f"{proxy}.stall").unlink(missing_ok=True)

    def healthz(self, name):
        """The replica's liveness answer: its status code, or None when it does not answer."""
        try:
            with urllib.request.urlopen(self.operator_urls[name] + "/healthz", timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return None

    # Echo service ----------------------------------------------------------------------

    def stored_echo(self, namespace, name):
        """What the echo-server holds for the object (read directly, not through the proxy)."""
        try:
            return json.loads(_get(f"{self.echo_url}/v1/echoes/{namespace}/{name}"))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise


# What the echo service saw ---------------------------------------------------------------

def replica_of(span):
    """The operator replica that made the call, from the User-Agent the echo-server recorded."""
    agent = span.tags.get("user_agent.original", "")
    replica = next((POD_NAMES[p] for p in POD_NAMES if agent.endswith(f"({p})")), None)
    assert replica, f"no replica named in the User-Agent {agent!r}"
    return replica


def echo_calls(jaeger, namespace, names):
    """Every PUT the echo-server served for these objects, as (trace id, span), once a
    successful one for each object is in Jaeger (the echo-server exports in batches)."""
    paths = {f"/v1/echoes/{namespace}/{name}" for name in names}

    def fetch():
        found = {}
        for path in paths:
            traces = jaeger.search("echo-server", ECHO_ROUTE, lookback_us=900_000_000, tags={"url.path": path})
            found.update({s.span_id: (t.trace_id, s) for t in traces
                          for s in t.find("echo-server", ECHO_ROUTE, kind="server")})
        return list(found.values())

    return jaeger.wait_for("the echo service's calls for every object", fetch,
                           lambda calls: {s.tags["url.path"] for _, s in calls
                                          if int(s.tags.get("http.response.status_code", 0)) == 200} >= paths)


def by_replica(calls):
    found = {}
    for _, span in calls:
        found.setdefault(replica_of(span), []).append(span)
    return found


def assert_no_overlap(calls):
    """No two replicas' calls to the echo service overlap in time: sorted by start, each
    replica's run of calls ends before the next replica's run begins."""
    spans = sorted((s for _, s in calls), key=lambda s: s.start_us)
    runs = []  # [replica, first start, last end]
    for span in spans:
        replica, end = replica_of(span), span.start_us + span.duration_us
        if runs and runs[-1][0] == replica:
            runs[-1][2] = max(runs[-1][2], end)
        else:
            runs.append([replica, span.start_us, end])
    for before, after in zip(runs, runs[1:]):
        assert before[2] <= after[1], (
            f"{before[0]} called the echo service until {before[2]} µs, after {after[0]} began at {after[1]} µs"
        )
    return runs


class Poller:
    """Calls poll() every `interval` seconds on a thread of its own, inside a `with` block."""

    def __init__(self, interval):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self):
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)

    def poll(self):
        raise NotImplementedError


class StatusHistory(Poller):
    """Polls every Echo of a namespace in the background and keeps each change of
    (observedGeneration, traceId), with when it was seen."""

    def __init__(self, kubectl, namespace, interval=0.2):
        super().__init__(interval)
        self.kubectl, self.namespace = kubectl, namespace
        self.seen = {}  # name -> [(monotonic time, generation, observedGeneration, traceId)]
        self.polls = 0

    def poll(self):
        result = self.kubectl.run("get", "echoes.tracing.example.com", "-n", self.namespace, "-o", "json",
                                  check=False)
        now = time.monotonic()
        if result.returncode != 0:
            return
        self.polls += 1
        for echo in json.loads(result.stdout)["items"]:
            status = echo.get("status") or {}
            entry = (now, echo["metadata"]["generation"], status.get("observedGeneration"), status.get("traceId"))
            history = self.seen.setdefault(echo["metadata"]["name"], [])
            if not history or history[-1][2:] != entry[2:]:
                history.append(entry)

    def assert_never_backwards(self):
        for name, history in self.seen.items():
            observed = [h[2] for h in history if h[2] is not None]
            assert observed == sorted(observed), f"{name}: observedGeneration went backwards: {history}"
