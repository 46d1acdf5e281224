"""The bundled Jaeger's tail sampling (deploy/40-jaeger.yaml): a trace with an error is kept,
an idle resync's trace (echo_operator.reconcile.writes=none) is dropped. Needs the loopback
harness: it shortens the operator's resync to 10 s (E2E_RESYNC_SECONDS), sets the share of
the rest to 0 % (E2E_TAIL_SAMPLING_PERCENT) and keeps the operator's log, which names each
resync's trace id. Elsewhere (kind: a 300 s resync, a 5 % share) it skips, saying so."""

import os
import re
import secrets
import time
from pathlib import Path

import pytest
import yaml

from cluster.test_traces import OPERATOR, echo_calls
from e2elib.polling import eventually

RESYNC_SECONDS = int(os.environ.get("E2E_RESYNC_SECONDS") or 300)
PERCENT = os.environ.get("E2E_TAIL_SAMPLING_PERCENT")
STATE = os.environ.get("E2E_STATE_DIR")
LOG = Path(STATE) / "logs" / "operator.log" if STATE else None
# decision_wait in deploy/40-jaeger.yaml, and time for the operator's batch to reach Jaeger.
DECISION_WAIT = 2
pytestmark = pytest.mark.skipif(
    not (RESYNC_SECONDS <= 30 and PERCENT == "0" and LOG and LOG.exists()),
    reason=(
        "SKIPPED: tail sampling needs the loopback harness of e2e/up (a 10 s resync, a 0 % share "
        f"of idle traces, the operator's log); here resync={RESYNC_SECONDS}s share={PERCENT}% log={LOG}"
    ),
)
ECHOES = "echoes.tracing.example.com"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def idle_resync_traces(name):
    """Trace ids of the operator's resyncs of `name` that wrote nothing, from its log."""
    found = []
    for line in LOG.read_text(errors="replace").splitlines():
        line = ANSI.sub("", line)
        if (f'k8s.object.name="{name}"' in line and 'echo_operator.reconcile.trigger="resync"' in line
                and "nothing to write" in line):
            found += re.findall(r'trace_id="([0-9a-f]{32})"', line)
    return found


def apply(kubectl, name, **spec):
    manifest = {
        "apiVersion": "tracing.example.com/v1alpha1",
        "kind": "Echo",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"message": f"tail sampling {name}", **spec},
    }
    kubectl.apply(stdin=yaml.safe_dump(manifest))


def test_an_error_trace_is_kept_and_idle_resyncs_are_dropped(kubectl, jaeger):
    idle, failing = f"idle-{secrets.token_hex(3)}", f"failing-{secrets.token_hex(3)}"
    apply(kubectl, idle)
    apply(kubectl, failing, failFirst=10)
    try:
        kubectl.wait_ready("default", idle)

        def first_failure(echo):
            ready = [c for c in ((echo or {}).get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
            return bool(ready) and ready[0]["status"] == "False"

        failed = eventually("the first failed reconcile", lambda: kubectl.echo("default", failing),
                            until=first_failure, timeout=60, interval=0.5)
        error_trace = jaeger.wait_for_trace(
            failed["status"]["traceId"], "the failed reconcile's trace (kept: it has an error)",
            lambda t: any(s.tags.get("echo_operator.reconcile.result") == "error"
                          for s in t.find(OPERATOR, "reconcile Echo")),
        )
        assert all(int(c.tags["http.response.status_code"]) == 503 for c in echo_calls(error_trace, "PUT"))

        # Two resyncs of the idle object, each a whole trace the operator exported.
        resyncs = eventually(f"two idle resyncs of {idle} in the operator's log", lambda: idle_resync_traces(idle),
                             until=lambda ids: len(ids) >= 2, timeout=3 * RESYNC_SECONDS + 10, interval=1)
        time.sleep(DECISION_WAIT + 5)
        kept = {trace_id: jaeger.trace(trace_id) for trace_id in resyncs}
        assert not any(kept.values()), f"idle resync traces Jaeger kept: {kept}"
        # And the object's first reconcile, which wrote, is there.
        echo = kubectl.echo("default", idle)
        assert jaeger.trace(echo["status"]["traceId"]), "the creating reconcile's trace is kept"
    finally:
        for name in (idle, failing):
            kubectl.run("delete", ECHOES, name, "-n", "default", "--ignore-not-found", "--wait=true")
