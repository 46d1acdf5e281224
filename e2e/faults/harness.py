"""The fault tests' handle on the loopback harness: stop, kill, pause and restart its
processes (through e2e/lib/proc), read the operators' metrics and the echo service's state."""

import json
import os
import re
import subprocess
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

    def proc(self, action, name):
        result = subprocess.run(
            [str(ROOT / "e2e" / "lib" / "proc"), action, name],
            env=dict(os.environ, E2E_STATE_DIR=str(self.state)),
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

    def start_operator(self, name):
        self.proc("start", name)
        eventually(f"{name} ready", lambda: self._ready(name), timeout=60)

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

    # Echo service ----------------------------------------------------------------------

    def stored_echo(self, namespace, name):
        """What the echo-server holds for the object (read directly, not through the proxy)."""
        try:
            return json.loads(_get(f"{self.echo_url}/v1/echoes/{namespace}/{name}"))
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
