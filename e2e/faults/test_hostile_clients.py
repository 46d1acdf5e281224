"""Hostile clients against both HTTP servers, on their real ports (not through the proxy): the
echo-server's API port and the leader's health/metrics port. 10,000 invented HTTP methods,
then 500 connections that each send half a request and stall. Memory stays bounded, the
echo-server's request metric keeps a bounded number of series (unknown methods are counted as
`_OTHER`), and real requests still succeed."""

import json
import os
import selectors
import socket
import threading
import time
import urllib.parse
import urllib.request

from faults.harness import _get

METHODS = 10_000
STALLED = 500
BATCH = 100
# Both servers' defaults (ECHO_HEADER_READ_TIMEOUT_SECONDS, ECHO_MAX_CONNECTIONS; the
# operator's health port the same).
HEADER_TIMEOUT = 10
MAX_CONNECTIONS = 256
# The servers' listen backlog (tokio's): connections the kernel completes and queues.
BACKLOG = 128
RSS_GROWTH_KIB = 30 * 1024
SERIES = "echo_server_request_duration_seconds"


def read_response(reader):
    """One HTTP/1.1 response from a buffered reader: (status, body). Content-Length only."""
    status = int(reader.readline().split()[1])
    length = 0
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, reader.read(length)


def invented_methods(url, path, count, deadline):
    """Sends `count` requests with distinct invented methods, pipelined in batches on a
    keep-alive connection (a new one when the server closes it); the statuses seen."""
    address = urllib.parse.urlsplit(url)
    statuses, sent = {}, 0
    while sent < count and time.monotonic() < deadline:
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            reader = sock.makefile("rb")
            try:
                while sent < count and time.monotonic() < deadline:
                    batch = range(sent, min(sent + BATCH, count))
                    sock.sendall(b"".join(f"INVENTED{i:05d} {path} HTTP/1.1\r\nHost: e2e\r\n\r\n".encode()
                                          for i in batch))
                    for _ in batch:
                        status, _ = read_response(reader)
                        statuses[status] = statuses.get(status, 0) + 1
                        sent += 1
            except (OSError, IndexError, ValueError):
                pass  # the server closed the connection: the rest of the batch goes again on a new one
            finally:
                reader.close()
    return sent, statuses


class Stalled:
    """`count` connections that each send the first half of a request and never finish it.
    Connected without blocking (the kernel drops the SYNs of those past the server's slots and
    listen backlog, and they retry until there is room). A thread sends each its half
    request as soon as it is connected, for at most `seconds`."""

    def __init__(self, url, count, seconds=40):
        address = urllib.parse.urlsplit(url)
        self.sockets, self.sent = [], 0
        self.selector = selectors.DefaultSelector()
        for _ in range(count):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex((address.hostname, address.port))
            self.sockets.append(sock)
            self.selector.register(sock, selectors.EVENT_WRITE)
        self.deadline = time.monotonic() + seconds
        self.thread = threading.Thread(target=self._pump, daemon=True)
        self.thread.start()

    def _pump(self):
        while self.sent < len(self.sockets) and time.monotonic() < self.deadline:
            for key, _ in self.selector.select(timeout=0.5):
                sock = key.fileobj
                self.selector.unregister(sock)
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    try:
                        sock.send(b"GET /healthz HTTP/1.1\r\nHost: e2e\r\nX-Half: ")
                        self.sent += 1
                    except OSError:
                        pass

    def wait_sent(self, count, timeout):
        """Waits until `count` connections carry their half request; how many do."""
        deadline = time.monotonic() + timeout
        while self.sent < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.sent

    def close(self):
        self.deadline = 0
        self.thread.join(timeout=5)
        self.selector.close()
        for sock in self.sockets:
            sock.close()


def timed(request, timeout):
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        assert response.status == 200, response.status
    return time.monotonic() - started


def test_hostile_clients_leave_both_servers_bounded_and_answering(harness):
    echo_url = harness.echo_url
    echo_metrics = os.environ["E2E_ECHO_METRICS_URL"]
    leader = harness.leader()
    servers = {"echo-server": (echo_url, "/v1/echoes/hostile/methods"),
               leader: (harness.operator_urls[leader], "/healthz")}
    rss = {name: [harness.rss_kib(name)] for name in servers}
    started = time.monotonic()

    for name, (url, path) in servers.items():
        sent, statuses = invented_methods(url, path, METHODS, deadline=time.monotonic() + 120)
        assert sent == METHODS, f"{name}: only {sent} of {METHODS} invented methods sent in 120s ({statuses})"
        print(f"{name}: {METHODS} invented methods in {time.monotonic() - started:.0f}s, answered {statuses}")
        rss[name].append(harness.rss_kib(name))

    text = _get(echo_metrics + "/metrics")
    series = [line for line in text.splitlines() if line.startswith(f"{SERIES}_count{{")]
    assert 'method="_OTHER"' in text, "invented methods are not counted as _OTHER"
    assert "INVENTED" not in text, "an invented method became a label value"
    assert len(series) <= 20, f"{len(series)} series of {SERIES}: {series[:10]}"
    print(f"{len(series)} series of {SERIES}")
    assert "INVENTED" not in _get(harness.operator_urls[leader] + "/metrics")

    # One server at a time: the stalled connections hold its 256 slots (time to get there
    # allowed) and the 128 places of its accept queue (the listen backlog), and the kernel
    # drops further SYNs, the real request's among them, which retry (1 s, 3 s, 7 s, 15 s).
    # The server closes the first 256 at its 10 s header timeout and takes the queued ones;
    # the real request gets in at its next SYN retry. So it waits about one header timeout
    # (at least half of one, or the stall did not take hold), and is bounded here by two and
    # a few seconds. A real PUT on the echo-server follows.
    bound = 2 * HEADER_TIMEOUT + 5
    waited, sent = {}, []
    for name, (url, _) in servers.items():
        stall = Stalled(url, STALLED)
        try:
            held = stall.wait_sent(MAX_CONNECTIONS + BACKLOG, timeout=10)
            try:
                waited[name] = timed(url + "/healthz", timeout=bound + 10)
            except OSError as error:
                raise AssertionError(f"a real request to {name} failed under the stall: {error!r}") from error
            rss[name].append(harness.rss_kib(name))
            if name == "echo-server":
                body = json.dumps({"message": "still here"}).encode()
                put = urllib.request.Request(f"{echo_url}/v1/echoes/hostile/real", data=body, method="PUT",
                                             headers={"Content-Type": "application/json"})
                waited["echo-server PUT"] = timed(put, timeout=bound)
            stall.thread.join(timeout=45)
            sent.append(stall.sent)
            rss[name].append(harness.rss_kib(name))
        finally:
            stall.close()
        assert held >= MAX_CONNECTIONS + BACKLOG, f"{name}: only {held} stalled connections got in"
        assert waited[name] >= HEADER_TIMEOUT / 2, f"{name}: the stall did not take hold ({waited[name]:.1f}s)"
    assert sent == [STALLED] * len(servers), f"half requests sent on {sent} of {STALLED} connections each"
    print(f"with {STALLED} stalled connections on each, real requests took "
          + ", ".join(f"{k} {v:.1f}s" for k, v in waited.items()))
    for name, samples in rss.items():
        growth = max(samples) - samples[0]
        print(f"{name}: RSS {samples[0] // 1024} MiB at the start, +{growth // 1024} MiB at most ({samples})")
        assert growth < RSS_GROWTH_KIB, f"{name} grew {growth // 1024} MiB: {samples}"
    for name, value in waited.items():
        assert value <= bound, f"{name} took {value:.1f}s"
    # The one echo the test stored goes again.
    urllib.request.urlopen(urllib.request.Request(f"{echo_url}/v1/echoes/hostile/real", method="DELETE"), timeout=10)
