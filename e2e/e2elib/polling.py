"""The one way the e2e code waits for something: ask again until the answer is good or the
time is up, then fail naming what was awaited and what was seen last. Standard library only
(e2e/trace uses it)."""

import json
import time


class TimedOut(AssertionError):
    """Raised by eventually(); `last` is the last value fetched, or the last error retried.
    An AssertionError, so a test that times out fails rather than errors, as before."""

    def __init__(self, message, last):
        super().__init__(message)
        self.last = last


def eventually(what, fetch, *, timeout, interval=0.2, until=bool, retrying=()):
    """Calls fetch() every `interval` seconds until until(value) holds, and returns that value.

    An exception of a type in `retrying` counts as "not yet"; any other goes up at once.
    fetch() runs at least once, the last time at or after the deadline (so no wait is cut
    short by a pause); then TimedOut says "waited TIMEOUTs for WHAT" and shows the last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            last = fetch()
            if until(last):
                return last
        except retrying as error:
            last = error
        if time.monotonic() >= deadline:
            raise TimedOut(f"waited {timeout:g}s for {what}; last seen: {_show(last)}", last)
        time.sleep(interval)


def _show(value):
    # Kubernetes objects read best as the JSON kubectl prints.
    if isinstance(value, dict):
        return json.dumps(value, indent=1, default=str)
    return repr(value)
