"""Loopback ports for tests."""

from __future__ import annotations

import socket


def closed_port() -> int:
    """A loopback port nothing listens on right now (a client pointed at it gets connection refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports free right now: all are held open while choosing, so two
    calls cannot hand out the same port (as two one-at-a-time picks can)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
