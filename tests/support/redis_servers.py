"""Pytest fixtures of throwaway Redis servers on free loopback ports (:mod:`ops.local.redis_cluster`).

``redis_cluster``: a real 3-master Redis Cluster (module scope); ``redis_single``: one standalone
Redis. Import the fixture into a test module (``from support.redis_servers import redis_cluster``).
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.local import redis_cluster as rc


def free_ports(n: int) -> list[int]:
    """``n`` loopback ports free right now (cluster bus ports are port + 10000: kept below 55536)."""
    out: list[int] = []
    while len(out) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", p + 10000)) if p < 55536 else None
            except OSError:
                continue
        if p < 55536 and p not in out:
            out.append(p)
    return out


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[rc.LocalRedis]:
    """A 3-master Redis Cluster, stopped at the end of the module."""
    local = rc.start(Path(tempfile.mkdtemp(prefix="feedstream-rcluster-")), free_ports(3))
    try:
        yield local
    finally:
        rc.stop(local)


@pytest.fixture(scope="module")
def redis_single() -> Iterator[rc.LocalRedis]:
    """One standalone Redis, stopped at the end of the module."""
    local = rc.start(Path(tempfile.mkdtemp(prefix="feedstream-redis-")), free_ports(1), cluster=False)
    try:
        yield local
    finally:
        rc.stop(local)
