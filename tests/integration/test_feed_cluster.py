"""The home feed on a real 3-master Redis Cluster (issue 15): the same pages as on one Redis.

A world is seeded (``bench.read_api.seed``: profiles, cached posts, timelines, counters, two
celebrities merged at read time) into a Redis Cluster started from Debian's ``redis-server``
(``support.redis_servers.redis_cluster``), then copied key by key (DUMP/RESTORE) into a single
Redis database, both over the same Cassandra keyspace. Every reader's pages, walked by cursor in
both orders, must be equal on the two; hides, deletes, a rebuild and the API route behave alike.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import redis
from support.api import api_settings, bearer, running_app
from support.redis_servers import redis_cluster  # noqa: F401  (fixture)

from bench.read_api import seed
from core.settings import isolated, with_overrides
from models.ranking import EngagementRecencyRanker
from serving.feed.engines import ReadEngines
from serving.feed.pipeline import read_known_feed
from stores import cassandra
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls

pytestmark = pytest.mark.timeout(600)
KEYSPACE, DB, READERS = "fs_itest_feedcluster", 12, 5


def copy_cluster(ports: list[int], single: redis.Redis) -> int:
    """Every key of the cluster's nodes into ``single`` (DUMP/RESTORE keeps types and TTLs)."""
    single.flushdb()
    n = 0
    for port in ports:
        node = redis.Redis(port=port)
        for key in node.scan_iter(count=1000):
            ttl = node.pttl(key)
            single.restore(key, max(ttl, 0), node.dump(key), replace=True)
            n += 1
    return n


@pytest.fixture(scope="module")
def worlds(stack, redis_cluster) -> Any:  # noqa: F811
    base = isolated(api_settings(stack), KEYSPACE, DB)
    c = cassandra.cluster(base).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    c.cluster.shutdown()
    on_cluster = with_overrides(base, redis_cluster_nodes=redis_cluster.nodes)
    shape = seed(on_cluster, READERS, 12, 6, 4, 2, random.Random(5))
    single = redis_store.client(base)
    assert copy_cluster(redis_cluster.ports, single) > 100
    engines = [ReadEngines(with_overrides(s, celebrity_threshold=READERS - 1), EngagementRecencyRanker())
               for s in (on_cluster, base)]
    assert redis_store.is_cluster(engines[0].redis) and not redis_store.is_cluster(engines[1].redis)
    yield engines, shape["readers"], redis_store.client(on_cluster), single
    for e in engines:
        e.close()


def comparable(page: dict[str, Any] | None) -> dict[str, Any] | None:
    if page is not None:
        page = {**page, "freshness": {**page["freshness"], "age_ms": None}}
    return page


def walk(e: ReadEngines, reader: str, algorithm: str, limit: int) -> list[dict[str, Any]]:
    pages, before = [], None
    for _ in range(30):
        page = read_known_feed(e, reader, algorithm, limit, before)
        assert page is not None
        pages.append(comparable(page))
        if page["next_cursor"] is None:
            return pages
        before = e.codec.decode(f"feed:{reader}", page["next_cursor"]).before
    raise AssertionError("cursor walk did not end")


def test_pages_on_the_cluster_equal_those_on_one_redis(worlds) -> None:
    (on_cluster, single), readers, _, _ = worlds
    for rd in readers:
        for algorithm in ("chronological", "ranked"):
            got, want = walk(on_cluster, rd, algorithm, 6), walk(single, rd, algorithm, 6)
            assert got == want
            ids = [it["post_id"] for p in got for it in p["items"]]
            assert len(ids) == len(set(ids)) and len(got) > 1
            assert all(p["degraded"]["source"] == "redis" for p in got)


def test_hides_deletes_and_rebuilds_apply_at_once_on_the_cluster(worlds) -> None:
    (on_cluster, single), readers, rc, r1 = worlds
    rd = readers[0]
    first = read_known_feed(on_cluster, rd, "chronological", 10, None)["items"]
    hidden_author, deleted = first[0]["author_id"], first[1]["post_id"]
    for r in (rc, r1):
        r.sadd(tls.k_negative(rd), hidden_author)
        r.sadd(post_store.DELETED, deleted)
        r.set(tls.k_stale(rd), "1")  # and a rebuild from Cassandra on the next read
    got, want = walk(on_cluster, rd, "chronological", 10), walk(single, rd, "chronological", 10)
    assert got == want
    items = [it for p in got for it in p["items"]]
    assert hidden_author not in {it["author_id"] for it in items}
    assert deleted not in {it["post_id"] for it in items}
    assert not rc.exists(tls.k_stale(rd))


def test_the_feed_route_serves_from_the_cluster(worlds) -> None:
    (on_cluster, _), readers, _, _ = worlds
    rd = readers[2]
    with running_app(on_cluster.settings) as client:
        for params in ({"limit": 5}, {"limit": 5}, {"limit": 5, "algorithm": "ranked"}):
            res = client.get(f"/v1/users/{rd}/feed", params=params, headers=bearer(on_cluster.settings, rd))
            assert res.status_code == 200, res.text
            body = res.json()
            assert len(body["items"]) == 5 and body["degraded"]["source"] == "redis"


def round_trips(e: ReadEngines, reader: str) -> tuple[int, int, int]:
    """Round trips (socket sends) and commands of one warm first page, and the nodes it touched."""
    from redis.connection import Connection

    sends: dict[int, int] = {}
    original = Connection.send_packed_command

    def counting(self, command, check_health=True):  # type: ignore[no-untyped-def]
        sends[self.port] = sends.get(self.port, 0) + 1
        return original(self, command, check_health)

    before = commands(e)
    Connection.send_packed_command = counting  # type: ignore[method-assign]
    try:
        read_known_feed(e, reader, "chronological", 20, None)
    finally:
        Connection.send_packed_command = original  # type: ignore[method-assign]
    after = commands(e)

    return sum(sends.values()), after - before, len(sends)


def commands(e: ReadEngines) -> int:
    """Commands served so far by every node of ``e``'s Redis (INFO itself not counted)."""
    nodes = ([n.redis_connection for n in e.redis.get_primaries()] if redis_store.is_cluster(e.redis)
             else [e.redis])
    return sum(v["calls"] for n in nodes for k, v in n.info("commandstats").items()
               if k.startswith("cmdstat_") and k != "cmdstat_info")


def test_a_warm_page_costs_round_trips_per_node_not_per_key(worlds) -> None:
    (on_cluster, single), readers, _, _ = worlds
    rd = readers[3]
    for e in (on_cluster, single):
        read_known_feed(e, rd, "chronological", 20, None)  # warm: rebuilt, caches filled
    trips_c, cmds_c, nodes = round_trips(on_cluster, rd)
    trips_1, cmds_1, _ = round_trips(single, rd)
    print(f"warm first page: one Redis {trips_1} round trips / {cmds_1} commands; "
          f"3-master cluster {trips_c} round trips / {cmds_c} commands on {nodes} nodes")
    assert nodes > 1
    assert trips_c < cmds_c  # pipelined per node, not one round trip per key
