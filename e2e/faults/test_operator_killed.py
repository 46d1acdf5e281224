"""The operator killed with SIGKILL: between the remote PUT and the status write, and as the
leader of two replicas in the middle of a run of changes."""

import json
import threading
import time

from e2elib.polling import eventually
from faults.conftest import manifest
from faults.harness import OPERATORS, POD_NAMES

# LEASE_DURATION_SECONDS in e2e/run --faults.
LEASE_SECONDS = 20
# A follower notices a renewal up to one retry period (a fifth of the Lease) late: it times the
# Lease on its own clock from when it saw it, never from the leader's renewTime.
RETRY_SECONDS = LEASE_SECONDS / 5
ECHO_ROUTE = "PUT /v1/echoes/{namespace}/{name}"
# RECONCILE_CONCURRENCY's default: reconciles a killed leader can have had running.
CONCURRENCY = 8


def other(name):
    return next(o for o in OPERATORS if o != name)


def test_killed_between_the_put_and_the_status_write_converges_once(harness, kubectl, jaeger, namespace):
    leader = harness.leader()
    # The echo service stores the write at once and answers 2 s later (within the harness's
    # 3 s attempt timeout): a wide window in which the PUT has happened and the status write
    # has not.
    kubectl.apply(stdin=manifest(namespace, "interrupted", delayMs=2000))
    stored = eventually("the echo service stored the write", lambda: harness.stored_echo(namespace, "interrupted"),
                        timeout=30, interval=0.05)
    harness.proc("kill", leader)
    killed_trace = stored["traceId"]
    try:
        echo = kubectl.echo(namespace, "interrupted")
        assert "observedGeneration" not in (echo.get("status") or {}), "killed before the status write"
        # Failover, not re-acquisition: the killed replica comes back (with its old name,
        # which would let it renew its own Lease at once) only after the other one leads.
        eventually(f"{other(leader)} to hold the Lease", lambda: harness.leader() == other(leader),
                   timeout=LEASE_SECONDS + RETRY_SECONDS + 5, interval=0.2)
    finally:
        harness.start_operator(leader)

    echo = kubectl.wait_ready(namespace, "interrupted", timeout=LEASE_SECONDS + 30)
    stored = harness.stored_echo(namespace, "interrupted")
    assert stored["writes"] == 2, "the killed reconcile's PUT, then the new leader's: one object, written twice"
    assert stored["message"] == "hello from interrupted"
    new_trace = echo["status"]["traceId"]
    assert new_trace != killed_trace and stored["traceId"] == new_trace

    # With its root, kube-runtime's span, which carries the links to earlier reconciles and
    # ends after the reconcile span (so can come a batch later).
    trace = jaeger.wait_for_trace(new_trace, "the new reconcile and its root",
                                  lambda t: t.find("echo-operator", "reconcile Echo")
                                  and t.find("echo-operator", "reconciling object"))
    stale = [(span, link) for span in trace.spans for link in span.links if link[0] == killed_trace]
    assert not stale, f"the new trace links to the killed process's trace: {stale}"


def test_the_follower_takes_over_within_one_lease_and_retry_and_never_overlaps(harness, kubectl, jaeger, namespace):
    leader = harness.leader()
    follower = other(leader)
    names = [f"run-{i}" for i in range(12)]

    def create():
        for name in names:
            kubectl.apply(stdin=manifest(namespace, name))
            time.sleep(0.5)

    creator = threading.Thread(target=create, daemon=True)
    creator.start()
    # Killed once it has called the echo service, so there are calls of both to compare.
    eventually(f"{leader} to call the echo service", lambda: harness.stored_echo(namespace, names[1]),
               timeout=30, interval=0.1)
    harness.proc("kill", leader)
    killed_at = time.monotonic()
    try:
        eventually(f"{follower} leads", lambda: harness.metric(follower, "echo_operator_leader") == 1,
                   timeout=LEASE_SECONDS + RETRY_SECONDS + 5, interval=0.1)
        failover = time.monotonic() - killed_at
        assert failover <= LEASE_SECONDS + RETRY_SECONDS + 1, f"failover took {failover:.1f}s"
        creator.join(timeout=60)
        for name in names:
            kubectl.wait_ready(namespace, name, timeout=60)
    finally:
        harness.start_operator(leader)

    # Every call the echo service received, with the replica that made it (its User-Agent):
    # the killed leader's calls all ended before the new leader's first began.
    def server_spans():
        found = {}
        for name in names:
            traces = jaeger.search("echo-server", ECHO_ROUTE, lookback_us=600_000_000,
                                   tags={"url.path": f"/v1/echoes/{namespace}/{name}"})
            found.update({s.span_id: s for t in traces for s in t.find("echo-server", ECHO_ROUTE, kind="server")})
        return list(found.values())

    # The echo-server exports in batches: wait until a successful call for every object is in.
    calls = jaeger.wait_for("the echo service's calls for every object", server_spans,
                            lambda spans: {s.tags["url.path"] for s in spans
                                           if int(s.tags.get("http.response.status_code", 0)) == 200} >=
                            {f"/v1/echoes/{namespace}/{n}" for n in names})
    by_replica = {}
    for span in calls:
        agent = span.tags.get("user_agent.original", "")
        replica = next((POD_NAMES[p] for p in POD_NAMES if agent.endswith(f"({p})")), None)
        assert replica, f"no replica named in the User-Agent {agent!r}"
        by_replica.setdefault(replica, []).append(span)
    assert by_replica.get(follower), f"the new leader reconciled nothing: {json.dumps(list(by_replica))}"
    old = by_replica.get(leader)
    assert old, "the killed leader's calls are missing, so nothing can be compared"
    last_old_end = max(s.start_us + s.duration_us for s in old)
    first_new_start = min(s.start_us for s in by_replica[follower])
    assert last_old_end <= first_new_start, "both replicas called the echo service at the same time"
    # Each object is in the echo service once, at its one generation, and written again only
    # where the killed leader had stored it without writing status (at most one per reconcile
    # it had running): the new leader checks the others and writes nothing.
    stored = {name: harness.stored_echo(namespace, name) for name in names}
    for name, echo in stored.items():
        assert echo["message"] == f"hello from {name}"
    written_twice = [name for name, echo in stored.items() if echo["writes"] > 1]
    assert all(echo["writes"] <= 2 for echo in stored.values()), stored
    assert len(written_twice) <= CONCURRENCY, f"the new leader redid finished work: {written_twice}"
