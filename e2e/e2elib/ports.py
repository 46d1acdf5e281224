"""Free loopback ports, for the harness (e2e/lib/render.py ports) and the benchmark."""

import socket


def free_ports(count):
    """Ports the kernel hands out now; all held open together so none repeats."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
