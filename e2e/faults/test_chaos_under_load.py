"""Chaos under load: 1,000 objects created, 500 of them updated and 300 deleted, straight
through the API (as the benchmark sends them), while the leader is SIGKILLed twice (each replica once: the killed one comes back only
after the other leads) and the
echo service (whose store is in memory) is restarted once. At the end every object is Ready at
its latest generation or gone, the echo service holds exactly the live objects with their
latest message, and the trace each live object names in its status is whole in Jaeger, from
the watch event (when a watch event started it) to the status write, in both processes.

A SIGKILLed replica cannot export the spans of its last moments: a trace whose echo call came
from a replica killed less than one export interval later is counted, reported and excused,
and only those."""

import concurrent.futures
import os
import time

from bench.kube_api import GROUP, KubeApi
from bench.traces import ECHO, OPERATOR, missing
from e2elib.polling import eventually
from faults.conftest import ready
from faults.harness import LEASE_SECONDS, OPERATORS, RETRY_SECONDS, other, replica_of

OBJECTS, UPDATED, DELETED = 1000, 500, 300
# Entries the echo service lost in its restart come back at the next resync.
RESYNC_SECONDS = 30
# OTEL_BSP_SCHEDULE_DELAY in the harness, and Jaeger's own write.
EXPORT_SECONDS = 2


def whole(trace):
    """What of one reconcile's spans the trace lacks: the benchmark's list, the watch event
    only when a watch event started the reconcile (a retry or a resync has none)."""
    reconciles = [s for s in trace.spans if s.service == OPERATOR and s.name == "reconcile Echo"]
    started_by_watch = any(s.tags.get("echo_operator.reconcile.trigger") == "watch_event" for s in reconciles)
    return [what for what in missing(trace) if what != "watch event" or started_by_watch]


class Load:
    """The objects of one namespace, written in parallel straight through the API."""

    def __init__(self, namespace):
        self.api = KubeApi(os.environ["KUBECONFIG"])
        self.path = f"{GROUP}/namespaces/{namespace}/echoes"
        self.pool = concurrent.futures.ThreadPoolExecutor(8)

    def send(self, request, names):
        return [self.pool.submit(request, name) for name in names]

    def create(self, name):
        self.api.request("POST", self.path, {
            "apiVersion": "tracing.example.com/v1alpha1", "kind": "Echo",
            "metadata": {"name": name}, "spec": {"message": f"hello from {name}"}})

    def update(self, name):
        self.api.request("PATCH", f"{self.path}/{name}", {"spec": {"message": f"updated {name}"}},
                         content_type="application/merge-patch+json")

    def delete(self, name):
        self.api.request("DELETE", f"{self.path}/{name}")

    def objects(self):
        return {o["metadata"]["name"]: o for o in self.api.request("GET", self.path)["items"]}

    def converged(self, names, generation):
        """How many of `names` are Ready at `generation` or later."""
        found = self.objects()
        return sum(1 for n in names if n in found and ready(found[n]) == ("True", "Reconciled")
                   and (found[n]["status"].get("observedGeneration") or 0) >= generation)


def cut_by_kill(trace, kills):
    """Whether the replica that made the trace's echo call was SIGKILLed before it could
    export the rest (within one export interval of the call)."""
    for span in (s for s in trace.spans if s.service == ECHO and s.kind == "server"):
        ended = (span.start_us + span.duration_us) / 1e6
        if any(replica == replica_of(span) and 0 <= at - ended <= EXPORT_SECONDS + 1 for replica, at in kills):
            return True
    return False


def done(futures):
    for future in futures:
        future.result(timeout=120)  # an API error fails the test here


def test_leader_killed_twice_and_echo_restarted_during_1000_object_churn(harness, kubectl, jaeger, namespace,
                                                                       operators_with):
    args = ("--resync-seconds", str(RESYNC_SECONDS))
    operators_with(args=args)
    load = Load(namespace)
    names = [f"load-{i:04d}" for i in range(OBJECTS)]
    updated, deleted = names[:UPDATED], names[-DELETED:]
    kills = []  # (replica, time.time() of the SIGKILL)

    def kill_leader():
        """SIGKILL to the leader; restarted once the other replica leads. (Restarted at once,
        under the same identity, it would simply take its own Lease back, as a container
        restarted in place does.)"""
        leader = harness.leader(timeout=60)
        harness.proc("kill", leader)
        kills.append((leader, time.time()))
        eventually(f"{other(leader)} leading", lambda: harness.metric(other(leader), "echo_operator_leader") == 1,
                   timeout=LEASE_SECONDS + RETRY_SECONDS + 10, interval=0.5)
        harness.start_operator(leader, args=args)

    started = time.monotonic()
    creates = load.send(load.create, names)
    eventually("a third of the objects Ready", lambda: load.converged(names, 1), until=lambda n: n >= OBJECTS // 3,
               timeout=180, interval=1)
    kill_leader()
    done(creates)

    updates = load.send(load.update, updated)
    eventually("a fifth of the updates Ready", lambda: load.converged(updated, 2),
               until=lambda n: n >= UPDATED // 5, timeout=180, interval=1)
    harness.proc("stop", "echo-server")
    harness.proc("start", "echo-server")
    eventually("the echo-server back", lambda: harness.stored_echo(namespace, "absent") is None, timeout=30,
               retrying=(OSError,))
    done(updates)

    deletes = load.send(load.delete, deleted)
    kill_leader()
    done(deletes)

    live = [n for n in names if n not in deleted]

    final = {}

    def lagging():
        """(objects not yet gone, objects not yet Ready at their generation): counts and a few names."""
        final.clear()
        final.update(load.objects())
        left = [n for n in deleted if n in final]
        behind = [n for n in live if n not in final or ready(final[n]) != ("True", "Reconciled")
                  or final[n]["status"].get("observedGeneration") != final[n]["metadata"]["generation"]]
        return len(left), len(behind), left[:5] + behind[:5]

    eventually("every object Ready at its generation or gone", lagging, until=lambda r: r[:2] == (0, 0),
               timeout=300, interval=2)
    took = time.monotonic() - started

    def store():
        entries = {n: harness.stored_echo(namespace, n) for n in names}
        wrong = [n for n in live if (entries[n] or {}).get("message") != final[n]["spec"]["message"]]
        stale = [n for n in deleted if entries[n] is not None]
        return len(wrong), len(stale), wrong[:5] + stale[:5]

    eventually("the echo service holding exactly the live objects", store, until=lambda r: r[:2] == (0, 0),
               timeout=RESYNC_SECONDS * 2 + 60, interval=3)

    time.sleep(EXPORT_SECONDS * 2)  # the last batches on their way
    traces = {n: final[n]["status"]["traceId"] for n in live}
    broken, excused = {}, []
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        fetched = dict(zip(traces, pool.map(lambda t: jaeger.trace(t), traces.values())))
    for name, trace in fetched.items():
        if trace is None or whole(trace):
            time.sleep(0.2)
            trace = jaeger.trace(traces[name])  # once more, for a batch that came late
        if trace is not None and not whole(trace):
            continue
        if trace is not None and cut_by_kill(trace, kills):
            excused.append(name)
        else:
            broken[name] = (traces[name], whole(trace) if trace else "no trace")

    print(f"{OBJECTS} created, {UPDATED} updated, {DELETED} deleted; leaders killed {[k[0] for k in kills]}, "
          f"echo-server restarted once; converged in {took:.0f}s; {len(traces) - len(broken) - len(excused)} "
          f"of {len(traces)} traces whole, {len(excused)} cut by a SIGKILL")
    assert not broken, f"{len(broken)} incomplete traces, e.g. {list(broken.items())[:5]}"
    assert sorted(k[0] for k in kills) == sorted(OPERATORS), f"each replica led and was killed once: {kills}"
