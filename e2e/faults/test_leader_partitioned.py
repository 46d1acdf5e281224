"""Only the leader cut off from the API server (its own api-proxy stopped, or paused: a
blackhole where connections hang), while objects are created: it steps down on its own
deadline before the other replica takes over, the two never lead or call the echo service at
once, and every object converges."""

import threading
import time

import pytest

from e2elib.polling import eventually
from faults.conftest import manifest
from faults.harness import (API_PROXIES, LEASE_SECONDS, RETRY_SECONDS, Poller, assert_no_overlap, by_replica,
                            echo_calls, other)


class Roles(Poller):
    """Samples both replicas' `echo_operator_leader` gauges in the background."""

    def __init__(self, harness, interval=0.1):
        super().__init__(interval)
        self.harness = harness
        self.samples = []  # (monotonic time, {replica: gauge or None})

    def _gauge(self, name):
        try:
            return self.harness.metric(name, "echo_operator_leader")
        except OSError:
            return None

    def poll(self):
        self.samples.append((time.monotonic(), {n: self._gauge(n) for n in API_PROXIES}))

    def first(self, name, value, after):
        return next((t for t, gauges in self.samples if t >= after and gauges[name] == value), None)


@pytest.mark.parametrize("cut", ["stop", "pause"], ids=["refused", "blackholed"])
def test_a_leader_cut_off_from_the_api_server_hands_over_cleanly(harness, kubectl, jaeger, namespace, cut):
    leader = harness.leader()
    follower = other(leader)
    proxy = API_PROXIES[leader]
    names = [f"cut-{i}" for i in range(10)]
    for name in names[:2]:
        kubectl.apply(stdin=manifest(namespace, name))
    for name in names[:2]:
        kubectl.wait_ready(namespace, name, timeout=60)

    def create():
        for name in names[2:]:
            kubectl.apply(stdin=manifest(namespace, name))
            time.sleep(2)

    with Roles(harness) as roles:
        creator = threading.Thread(target=create, daemon=True)
        harness.proc(cut, proxy)
        cut_at = time.monotonic()
        try:
            creator.start()
            eventually(f"{follower} leads", lambda: harness.metric(follower, "echo_operator_leader") == 1,
                       timeout=LEASE_SECONDS + RETRY_SECONDS + 5, interval=0.2)
            creator.join(timeout=60)
            for name in names:
                kubectl.wait_ready(namespace, name, timeout=60)
            assert harness.metric(leader, "echo_operator_leader") == 0
        finally:
            harness.proc("start" if cut == "stop" else "resume", proxy)
        # Back on the network, the old leader follows.
        time.sleep(RETRY_SECONDS + 1)
        assert harness.leader() == follower

    stepped_down = roles.first(leader, 0, cut_at)
    took_over = roles.first(follower, 1, cut_at)
    assert stepped_down is not None and took_over is not None, roles.samples[-5:]
    both = [(t - cut_at, g) for t, g in roles.samples if all(v == 1 for v in g.values())]
    assert not both, f"both replicas said they led: {both[:5]}"
    print(f"{cut}: {leader} stepped down {stepped_down - cut_at:.1f}s after the cut, "
          f"{follower} led {took_over - cut_at:.1f}s after it")
    assert stepped_down <= took_over, "the new leader led before the old one stepped down"
    assert took_over - cut_at <= LEASE_SECONDS + RETRY_SECONDS + 1

    calls = echo_calls(jaeger, namespace, names)
    replicas = by_replica(calls)
    assert replicas.get(follower), f"the new leader called nothing: {list(replicas)}"
    runs = assert_no_overlap(calls)
    assert runs[-1][0] == follower, runs
    for name in names:
        assert harness.stored_echo(namespace, name)["message"] == f"hello from {name}"
