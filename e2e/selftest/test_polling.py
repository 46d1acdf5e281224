"""e2elib.polling.eventually, the one polling loop of the e2e code: what it returns, what it
retries, and what its failure says."""

import time

import pytest

from e2elib.polling import TimedOut, eventually


def answers(*values):
    """A fetch() that returns `values` one call after another (an exception is raised)."""
    pending = list(values)
    calls = []

    def fetch():
        calls.append(time.monotonic())
        value = pending.pop(0) if len(pending) > 1 else pending[0]
        if isinstance(value, BaseException):
            raise value
        return value

    fetch.calls = calls
    return fetch


def test_returns_the_first_good_answer_and_asks_no_more():
    fetch = answers(None, 0, "", {"ready": True}, "later")
    assert eventually("a dict", fetch, timeout=5, interval=0.01) == {"ready": True}
    assert len(fetch.calls) == 4


def test_until_judges_the_answer_and_the_answer_is_returned():
    fetch = answers(1, 2, 3)
    assert eventually("three", fetch, until=lambda n: n >= 3, timeout=5, interval=0.01) == 3


def test_errors_asked_for_are_retried_others_go_up_at_once():
    assert eventually("an answer", answers(ConnectionRefusedError(), "up"), timeout=5, interval=0.01,
                      retrying=(OSError,)) == "up"
    fetch = answers(ValueError("broken"), "up")
    with pytest.raises(ValueError, match="broken"):
        eventually("an answer", fetch, timeout=5, interval=0.01, retrying=(OSError,))
    assert len(fetch.calls) == 1


def test_gives_up_after_the_timeout_naming_what_and_the_last_answer():
    fetch = answers({"status": {"phase": "Pending"}})
    started = time.monotonic()
    with pytest.raises(TimedOut) as failure:
        eventually("the pod Running", fetch, until=lambda pod: pod["status"]["phase"] == "Running",
                   timeout=0.3, interval=0.05)
    took = time.monotonic() - started
    assert 0.3 <= took < 2, "waits the whole timeout, and not much more"
    assert fetch.calls[-1] - started >= 0.3, "the last look is at or after the deadline"
    message = str(failure.value)
    assert message.startswith("waited 0.3s for the pod Running; last seen: ")
    assert '"phase": "Pending"' in message, "a dict is shown as JSON"
    assert failure.value.last == {"status": {"phase": "Pending"}}
    assert isinstance(failure.value, AssertionError), "a timed-out test fails, it does not error"


def test_a_retried_error_is_what_the_failure_shows():
    with pytest.raises(TimedOut, match="ConnectionRefusedError") as failure:
        eventually("Jaeger up", answers(ConnectionRefusedError(111, "refused")), timeout=0.1, interval=0.02,
                   retrying=(OSError,))
    assert isinstance(failure.value.last, ConnectionRefusedError)


def test_a_zero_timeout_asks_once_without_pausing():
    fetch = answers(None)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        eventually("anything", fetch, timeout=0, interval=5)
    assert len(fetch.calls) == 1 and time.monotonic() - started < 1
