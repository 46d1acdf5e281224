"""How a round sends its requests to the API server: on a pool of clients, all at once or at a
set pace (bench.py)."""

import concurrent.futures
import time


def fan_out(pool, request, names, rate=None):
    """Sends request(name) for every name on the pool; returns {name: when it was sent} and
    the errors. With a rate (requests per second), the i-th request is sent no earlier than
    i / rate after the first: the same arrival rate at every object count, so that what a
    reconcile costs is not also measured against how hard the API server is driven."""
    start = time.monotonic()

    def send(index, name):
        if rate:
            time.sleep(max(0.0, start + index / rate - time.monotonic()))
        sent = time.monotonic()
        request(name)
        return name, sent

    sent, errors = {}, []
    futures = [pool.submit(send, i, n) for i, n in enumerate(names)]
    for future in concurrent.futures.as_completed(futures):
        try:
            name, at = future.result()
            sent[name] = at
        except Exception as error:
            errors.append(str(error))
    return sent, errors


def sending_rate(sent):
    """Requests per second from the first request sent to the last (None for fewer than two)."""
    if len(sent) < 2:
        return None
    span = max(sent.values()) - min(sent.values())
    return (len(sent) - 1) / span if span > 0 else None
