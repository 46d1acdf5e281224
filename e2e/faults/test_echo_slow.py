"""The echo service slow (SIGSTOP: connections are accepted by the kernel, nothing answers)
and failing with 5xx for longer than one reconcile's retry budget: each reconcile ends in
bounded time, and its trace shows every attempt."""

import time

from e2elib.polling import eventually
from faults.conftest import manifest, ready
from faults.test_echo_down import wait_condition

OPERATOR = "echo-operator"
# e2e/run --faults: ECHO_TIMEOUT_SECONDS=3; the default ECHO_HTTP_RETRIES=3 (4 attempts).
ATTEMPT_TIMEOUT = 3
ATTEMPTS = 4


def attempts(jaeger, trace_id, method="PUT"):
    """The CLIENT spans of the operator's calls to the echo service, once all of them and the
    reconcile span that holds them are in Jaeger (the reconcile span ends last, after the status
    write and the Event, so it can reach Jaeger a batch later than its calls)."""

    def calls(trace):
        return sorted(
            (s for s in trace.find(OPERATOR, kind="client", **{"http.request.method": method})
             if "/apis/" not in s.tags.get("url.full", "")),
            key=lambda s: s.start_us,
        )

    trace = jaeger.wait_for_trace(
        trace_id, f"{ATTEMPTS} attempts and their reconcile",
        lambda t: len(calls(t)) >= ATTEMPTS and t.find(OPERATOR, "reconcile Echo"),
    )
    return trace, calls(trace)


def test_a_slow_echo_service_fails_each_reconcile_in_bounded_time(harness, kubectl, jaeger, namespace):
    harness.proc("pause", "echo-server")
    try:
        started = time.monotonic()
        kubectl.apply(stdin=manifest(namespace, "stalled"))
        echo = wait_condition(kubectl, namespace, "stalled", ("False", "EchoUnreachable"), timeout=40)
        elapsed = time.monotonic() - started
        # 4 attempts of 3 s and at most 0.1 + 0.2 + 0.4 s … 2 s between them, plus the API calls.
        assert elapsed <= ATTEMPTS * ATTEMPT_TIMEOUT + 3 * 2 + 3, f"first reconcile failed after {elapsed:.1f}s"

        trace, calls = attempts(jaeger, echo["status"]["traceId"])
        assert len(calls) == ATTEMPTS, calls
        for number, call in enumerate(calls):
            assert call.tags.get("error.type") == "timeout", f"attempt {number}: {call.tags}"
            assert int(call.tags.get("http.request.resend_count", 0)) == number
            assert ATTEMPT_TIMEOUT * 1e6 * 0.9 <= call.duration_us <= (ATTEMPT_TIMEOUT + 1) * 1e6, call
    finally:
        harness.proc("resume", "echo-server")
    wait_condition(kubectl, namespace, "stalled", ("True", "Reconciled"), generation=1, timeout=30)


def test_5xx_past_the_retry_budget_fails_the_reconcile_and_the_next_one_goes_on(
    harness, kubectl, jaeger, namespace
):
    """failFirst: 10 is more 503s than one reconcile's 4 attempts: the first two reconciles
    fail with every attempt in their traces, the third succeeds."""
    kubectl.apply(stdin=manifest(namespace, "failing", failFirst=10))
    echo = eventually(
        "the first failed reconcile",
        lambda: (e := kubectl.echo(namespace, "failing")) and ready(e) == ("False", "EchoFailing") and e,
        timeout=30,
    )
    trace, calls = attempts(jaeger, echo["status"]["traceId"])
    assert [int(c.tags["http.response.status_code"]) for c in calls] == [503] * ATTEMPTS
    assert [int(c.tags.get("http.request.resend_count", 0)) for c in calls] == list(range(ATTEMPTS))
    reconcile = trace.one(OPERATOR, "reconcile Echo")
    assert reconcile.duration_us < 10e6, "a reconcile of 4 quick 503s is over in seconds"
    assert reconcile.tags.get("otel.status_code") == "ERROR"

    done = wait_condition(kubectl, namespace, "failing", ("True", "Reconciled"), generation=1, timeout=60)
    stored = harness.stored_echo(namespace, "failing")
    assert stored["writes"] == 11, "10 refused writes, then the one that stored it"
    assert stored["traceId"] == done["status"]["traceId"]
