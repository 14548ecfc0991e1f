"""Id nodes leased from a real Redis: concurrent processes never issue the same id; a lost lease stops ids.

Uses a redis-server of its own on a free loopback port (no Kafka or Cassandra needed).
"""

from __future__ import annotations

import array
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from core import ids
from core.settings import REPO_ROOT, Settings
from stores import idnodes

PROCESSES, PER_PROCESS = 4, 250_000  # a million ids in total

CHILD = r"""
import array, sys
from core.settings import Settings
from core import ids
from stores import idnodes
keeper = idnodes.claim(Settings())
print(keeper.node, flush=True)
sys.stdin.readline()  # wait until every process holds its node: then all generate at once
out = array.array("q", (ids.new_post_id() for _ in range(int(sys.argv[2]))))
with open(sys.argv[1], "wb") as f:
    out.tofile(f)
keeper.stop()
"""


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tempfile.mkdtemp(prefix="idnodes-redis-")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", data,
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    try:
        for _ in range(400):  # until it answers PING
            try:
                r.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None, "redis-server exited"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        r.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_concurrent_processes_lease_distinct_nodes_and_a_million_ids_have_no_duplicate(
        redis_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FEEDSTREAM_REDIS_URL": redis_url, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("FEEDSTREAM_ID_NODE", None)
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / f"ids-{i}"), str(PER_PROCESS)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
                for i in range(PROCESSES)]
    try:
        nodes = [int(c.stdout.readline()) for c in children]
        for c in children:
            c.stdin.write("go\n")
            c.stdin.flush()
        for c in children:
            assert c.wait(timeout=300) == 0
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
    assert len(set(nodes)) == PROCESSES
    every: list[int] = []
    for i in range(PROCESSES):
        got = array.array("q")
        got.frombytes((tmp_path / f"ids-{i}").read_bytes())
        every.extend(got)
    assert len(every) == PROCESSES * PER_PROCESS
    assert len(set(every)) == len(every)  # 0 duplicates
    # the processes really overlapped in time: some millisecond carries ids of several nodes
    per_ms: dict[int, set[int]] = {}
    bits = Settings().id_node_bits
    for i in every:
        per_ms.setdefault(ids.id_timestamp_ms(i), set()).add((i >> (12 - bits)) & ((1 << bits) - 1))
    assert max(len(v) for v in per_ms.values()) > 1
    assert redis.Redis.from_url(redis_url).keys("idnode:*") == []  # released at exit


def test_lease_is_exclusive_renewed_and_a_lost_lease_stops_ids(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    a = idnodes.NodeLease(r, node_bits=1, ttl_s=30)
    b = idnodes.NodeLease(r, node_bits=1, ttl_s=30)
    c = idnodes.NodeLease(r, node_bits=1, ttl_s=30)
    assert {a.acquire(), b.acquire()} == {0, 1}
    with pytest.raises(idnodes.NoIdNode):  # both nodes taken: fail loudly, never run as a duplicate
        c.acquire()
    keeper = idnodes.NodeKeeper(a)
    keeper._install(a.node)
    ids.new_id()
    keeper.tick()  # renewal while the key is ours
    assert r.pttl(idnodes.k_idnode(a.node)) > 25_000
    lost = a.node
    r.set(idnodes.k_idnode(lost), "someone-else")  # the lease expired and another process took the node
    gen = keeper.generator
    with pytest.raises(idnodes.NoIdNode):  # the other node is b's: nothing to re-lease
        keeper.tick()
    with pytest.raises(ids.IdNodeLost):
        gen.new_id()
    b.release()
    keeper.tick()  # the next tick leases the freed node and issues ids again
    assert keeper.node == 1 - lost
    ids.new_id()
    keeper.stop()
    assert r.keys("idnode:*") == [idnodes.k_idnode(lost).encode()]  # only the other holder's key is left
    ids.reset()


def test_the_api_does_not_start_without_an_id_node(redis_url: str) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app

    # by alias: the field name is not an init argument, and the test stack's env would win
    settings = Settings(FEEDSTREAM_REDIS_URL="redis://127.0.0.1:1/0", jwt_secret="x" * 40)
    assert settings.redis_url == "redis://127.0.0.1:1/0"
    with pytest.raises(idnodes.NoIdNode), TestClient(create_app(settings)):
        pass
