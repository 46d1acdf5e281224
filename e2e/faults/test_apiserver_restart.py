"""kube-apiserver restarted (etcd kept) while objects are being changed: the operator's watch
resumes, every change converges, and no generation is reconciled twice.

The outage here (SIGKILL, restart at once) is shorter than the Lease, so the leader keeps
leading through it. An outage longer than the Lease makes the leader step down (it cannot
prove it still leads); the next leader lists and reconciles every object once more, which
test_operator_killed covers."""

import json
import threading
import time

from e2elib.polling import eventually
from faults.conftest import manifest

OBJECTS = 5


def test_the_watch_resumes_after_an_api_server_restart(harness, kubectl, jaeger, namespace):
    names = [f"kept-{i}" for i in range(OBJECTS)]
    for name in names:
        kubectl.apply(stdin=manifest(namespace, name))
    for name in names:
        kubectl.wait_ready(namespace, name)

    # A writer that keeps changing every object through the restart; a change the API server
    # refused (it is down) is tried again until it lands, so every change is made.
    applied = {name: 0 for name in names}
    stop = threading.Event()

    def writer():
        round_ = 0
        while not stop.is_set():
            round_ += 1
            for name in names:
                while not stop.is_set():
                    patch = json.dumps({"spec": {"message": f"round {round_}"}})
                    result = kubectl.run("patch", "echo", name, "-n", namespace, "--type", "merge", "-p", patch,
                                         check=False)
                    if result.returncode == 0:
                        applied[name] = round_
                        break
                    time.sleep(0.3)
            time.sleep(0.5)

    leader = harness.leader()
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        time.sleep(2)
        harness.proc("kill", "kube-apiserver")
        time.sleep(1)
        harness.proc("start", "kube-apiserver")
        eventually("the API server back", lambda: kubectl.run("get", "--raw", "/readyz", check=False).returncode == 0,
                   timeout=90)
        time.sleep(4)  # changes right after the restart, while the watch reconnects
    finally:
        stop.set()
        thread.join(timeout=60)
    assert all(applied.values()), applied
    assert harness.leader() == leader and harness.metric(leader, "echo_operator_leader") == 1, (
        "the outage outlasted the Lease: the leader stepped down, so this run tests a failover instead"
    )

    for name in names:
        eventually(
            f"{name} at its last generation",
            lambda name=name: (e := kubectl.echo(namespace, name))
            and (e.get("status") or {}).get("observedGeneration") == e["metadata"]["generation"]
            and e,
            timeout=90,
        )
        echo = kubectl.echo(namespace, name)
        stored = harness.stored_echo(namespace, name)
        assert stored["message"] == f"round {applied[name]}", (name, stored)
        assert stored["traceId"] == echo["status"]["traceId"]

        # No change reconciled twice: every successful reconcile was of a generation of its
        # own (a re-list after the restart must not trigger objects already reconciled).
        # A reconcile that failed (its status write met the stopped API server) is retried
        # and may PUT the same generation again: the echo service's writes are at most the
        # reconciles that ran.
        reconciles = reconcile_spans(jaeger, namespace, name, echo["metadata"]["generation"])
        succeeded = [s for s in reconciles if s.tags.get("otel.status_code") != "ERROR"]
        generations = [int(s.tags["k8s.object.generation"]) for s in succeeded]
        assert len(generations) == len(set(generations)), f"{name}: a generation reconciled twice: {generations}"
        assert stored["writes"] <= len(reconciles), (name, stored["writes"], len(reconciles))


def reconcile_spans(jaeger, namespace, name, generation):
    """Every `reconcile Echo` span of the object in Jaeger, once the successful reconcile of
    `generation` (the last) has arrived."""

    def spans():
        traces = jaeger.search("echo-operator", "reconcile Echo", lookback_us=600_000_000, limit=1000,
                               tags={"k8s.namespace.name": namespace, "k8s.object.name": name})
        found = {s.span_id: s for t in traces for s in t.find("echo-operator", "reconcile Echo",
                                                                 **{"k8s.object.name": name})}
        return list(found.values())

    return jaeger.wait_for(f"the reconciles of {namespace}/{name}", spans,
                           lambda found: any(int(s.tags["k8s.object.generation"]) == generation
                                             and s.tags.get("otel.status_code") != "ERROR" for s in found))
