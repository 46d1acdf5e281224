"""The leader SIGSTOPped for longer than its Lease while objects change, then resumed: the
other replica leads, and the resumed one, which still has reconciles in flight and watch
events queued, writes nothing (its fence: every write checks its own deadline first)."""

import datetime
import time

from e2elib.polling import eventually
from faults.conftest import manifest
from faults.harness import (POD_NAMES, LEASE_SECONDS, RETRY_SECONDS, StatusHistory, by_replica, echo_calls, other,
                            replica_of)

OBJECTS = 4
# The echo service holds each write this long before it answers (within the 3 s attempt
# timeout), so the leader is paused with its PUTs sent and their status writes still to come.
HOLD_MS = 2000


def test_a_paused_leader_resumes_and_writes_nothing(harness, kubectl, jaeger, namespace):
    leader = harness.leader()
    follower = other(leader)
    names = [f"paused-{i}" for i in range(OBJECTS)]
    new_names = [f"created-while-paused-{i}" for i in range(2)]
    for name in names:
        kubectl.apply(stdin=manifest(namespace, name, delayMs=HOLD_MS))
    for name in names:
        kubectl.wait_ready(namespace, name, timeout=60)

    with StatusHistory(kubectl, namespace) as history:
        # Generation 2 of every object: the leader's PUTs reach the echo service, which holds
        # its answers; the leader is stopped as soon as the first is stored.
        for name in names:
            kubectl.apply(stdin=manifest(namespace, name, delayMs=HOLD_MS, message=f"second {name}"))
        eventually("the leader's PUT of a second generation stored",
                   lambda: any((harness.stored_echo(namespace, n) or {}).get("message") == f"second {n}"
                               for n in names), timeout=30, interval=0.05)
        harness.proc("pause", leader)
        paused_at, paused_wall = time.monotonic(), time.time()
        try:
            # While it is stopped: generation 3 of every object, and new objects.
            for name in names:
                kubectl.apply(stdin=manifest(namespace, name, delayMs=HOLD_MS, message=f"third {name}"))
            for name in new_names:
                kubectl.apply(stdin=manifest(namespace, name, delayMs=HOLD_MS))
            eventually(f"{follower} leads", lambda: harness.metric(follower, "echo_operator_leader") == 1,
                       timeout=LEASE_SECONDS + RETRY_SECONDS + 5, interval=0.2)
            took_over = time.monotonic() - paused_at
            time.sleep(max(0.0, paused_at + LEASE_SECONDS + 5 - time.monotonic()))
        finally:
            harness.proc("resume", leader)
        resumed_at = time.monotonic()
        # Every object converges at its latest generation, and the resumed replica has a few
        # seconds of its in-flight reconciles and queued events to misbehave in.
        for name in names + new_names:
            kubectl.wait_ready(namespace, name, timeout=60)
        time.sleep(5)
        eventually(f"{leader} follows", lambda: harness.metric(leader, "echo_operator_leader") == 0, timeout=10)

    assert took_over <= LEASE_SECONDS + RETRY_SECONDS + 1, f"{follower} took over {took_over:.1f}s after the pause"
    assert history.polls >= 50, f"the status was polled only {history.polls} times"
    history.assert_never_backwards()
    for name in names:
        assert harness.stored_echo(namespace, name)["message"] == f"third {name}"

    calls = echo_calls(jaeger, namespace, names + new_names)
    replicas = by_replica(calls)
    assert replicas.get(follower), f"the new leader called nothing: {list(replicas)}"
    assert replicas.get(leader), "the paused leader's calls are missing, so nothing can be compared"
    first_new = min(s.start_us for s in replicas[follower])
    late = [s for s in replicas[leader] if s.start_us + s.duration_us > first_new]
    assert not late, f"the resumed leader called the echo service after the new leader began: {late}"
    # A status the resumed replica wrote would name a trace of its own: every trace that
    # shows up in a status after the pause is one in which only the new leader called.
    traces_of = {}
    for trace_id, span in calls:
        traces_of.setdefault(trace_id, set()).add(replica_of(span))
    for name, seen in history.seen.items():
        for when, _, generation, trace_id in seen:
            if when > paused_at + 2 and leader in traces_of.get(trace_id, set()):
                raise AssertionError(f"{name}'s status at generation {generation} was written by {leader}'s "
                                     f"trace {trace_id}, {when - resumed_at:+.1f}s from the resume")
    # Nor an Event (they name the replica that reported them), from its own clock, which is true here.
    pod = next(p for p, r in POD_NAMES.items() if r == leader)

    def reported_at(event):
        stamp = ((event.get("series") or {}).get("lastObservedTime") or event.get("eventTime")
                 or event["metadata"]["creationTimestamp"])
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    events = kubectl.json("get", "events.events.k8s.io", "-n", namespace)["items"]
    late_events = [(e["reason"], e["regarding"]["name"], reported_at(e) - paused_wall) for e in events
                   if e.get("reportingInstance") == pod and reported_at(e) > paused_wall + 2]
    assert not late_events, f"the resumed leader published Events: {late_events}"
    print(f"took over {took_over:.1f}s after the pause; {history.polls} status polls; "
          f"calls: {leader} {len(replicas[leader])}, {follower} {len(replicas[follower])}")
