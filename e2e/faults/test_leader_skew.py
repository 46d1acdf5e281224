"""Two replicas whose wall clocks disagree by 40 s: the leader's 20 s behind, the follower's
20 s ahead (libfaketime on each process; their monotonic clocks stay true). A follower that
compared the leader's renewTime with its own wall clock would see a Lease 40 s stale and take
it at its first check; this one times the Lease on its own monotonic clock from when it saw
it, so it waits for a real expiry: no two replicas ever call the echo service at once, and
failover after the leader is killed still takes one Lease duration and one retry period."""

import datetime
import glob
import os
import shutil
import subprocess
import threading
import time

import pytest

from e2elib.polling import eventually
from faults.conftest import manifest
from faults.harness import (LEASE, LEASE_SECONDS, RETRY_SECONDS, assert_no_overlap, by_replica,
                            echo_calls, other)

SKEW = 20
LIBFAKETIME = "/usr/lib/*/faketime/libfaketime.so.1"


@pytest.fixture(scope="module")
def libfaketime():
    """Debian's libfaketime, installed here if it is missing and this is root (as .ci/run does)."""
    found = glob.glob(LIBFAKETIME)
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "libfaketime"], capture_output=True, timeout=300,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        found = glob.glob(LIBFAKETIME)
    if not found:
        pytest.skip(f"SKEW NOT TESTED: libfaketime is not installed ({LIBFAKETIME}) and could not be "
                    "installed here; install Debian's libfaketime (.ci/run does)")
    return found[0]


def skewed(lib, offset):
    # Wall clocks only: CLOCK_MONOTONIC (Rust's Instant, tokio's timers) stays true.
    return {"LD_PRELOAD": lib, "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def renew_lag(kubectl):
    """How far the Lease's renewTime, written by its holder's clock, lies behind this one's."""
    lease = kubectl.json("get", "lease", LEASE[1], "-n", LEASE[0])
    renewed = datetime.datetime.fromisoformat(lease["spec"]["renewTime"].replace("Z", "+00:00"))
    return datetime.datetime.now(datetime.timezone.utc).timestamp() - renewed.timestamp()


def test_skewed_clocks_never_give_two_leaders(harness, kubectl, jaeger, namespace, libfaketime):
    # A replica 20 s behind must find the API server's certificate already valid.
    certificate = harness.state / "pki" / "apiserver.crt"
    time.sleep(max(0.0, certificate.stat().st_mtime + SKEW + 5 - time.time()))

    behind = harness.leader()
    ahead = other(behind)
    names = [f"skew-{i}" for i in range(12)]
    try:
        # Restarted with skewed clocks: the leader first (its SIGTERM released the Lease, or
        # it takes it back as its holder), then the follower.
        harness.proc("stop", ahead)
        harness.proc("stop", behind)
        harness.start_operator(behind, env=skewed(libfaketime, f"-{SKEW}s"))
        eventually(f"{behind} leads", lambda: harness.leader() == behind, timeout=LEASE_SECONDS + 10)
        harness.start_operator(ahead, env=skewed(libfaketime, f"+{SKEW}s"))
        # The skew is real: the leader writes renewTimes 20 s in the past (a renewTime 20 s
        # ahead would be the follower's, which must not have taken the Lease).
        lag = eventually("a renewTime from a skewed replica", lambda: renew_lag(kubectl),
                         until=lambda lag: abs(lag) >= SKEW - 2, timeout=RETRY_SECONDS * 2 + 2)
        assert harness.lease_holder() == behind, f"{ahead}, whose clock is ahead, took the Lease at once"
        assert lag >= SKEW - 2, f"the leader's renewTime is {lag:.1f}s behind"

        # Objects created one by one for longer than two Leases' worth of the follower's checks.
        def create():
            for name in names:
                kubectl.apply(stdin=manifest(namespace, name))
                time.sleep(1)

        creator = threading.Thread(target=create, daemon=True)
        creator.start()
        creator.join(timeout=60)
        for name in names:
            kubectl.wait_ready(namespace, name, timeout=60)
        time.sleep(RETRY_SECONDS * 2)
        assert harness.leader() == behind, "the follower whose clock is ahead took the Lease"
        assert harness.metric(ahead, "echo_operator_leader") == 0

        harness.proc("kill", behind)
        killed_at = time.monotonic()
        eventually(f"{ahead} leads", lambda: harness.metric(ahead, "echo_operator_leader") == 1,
                   timeout=LEASE_SECONDS + RETRY_SECONDS + 5, interval=0.1)
        failover = time.monotonic() - killed_at
        late = ["late-0", "late-1"]
        for name in late:
            kubectl.apply(stdin=manifest(namespace, name))
        for name in late:
            kubectl.wait_ready(namespace, name, timeout=60)
        ahead_lag = renew_lag(kubectl)
    finally:
        # Back to true clocks for the tests that follow.
        harness.restart_operators()

    print(f"leader's renewTime {lag:.1f}s behind, the new leader's {-ahead_lag:.1f}s ahead; failover {failover:.1f}s")
    assert ahead_lag <= -(SKEW - 2), f"the new leader's clock is not ahead (renewTime lag {ahead_lag:.1f}s)"
    assert failover <= LEASE_SECONDS + RETRY_SECONDS + 1, f"failover took {failover:.1f}s"
    calls = echo_calls(jaeger, namespace, names + late)
    replicas = by_replica(calls)
    assert set(replicas) == {behind, ahead}, f"calls by {set(replicas)}"
    runs = assert_no_overlap(calls)
    assert [run[0] for run in runs] == [behind, ahead], f"leadership changed hands more than once: {runs}"
