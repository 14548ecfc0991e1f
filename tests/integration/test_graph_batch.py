"""Issue 16: the graph worker applies a batch read-once / fold / write-once; the stores it leaves
must equal applying the same records one at a time, a redelivered batch must change nothing, and
counts must equal a recount of the durable edges; on a single Redis and on a real 3-master Redis
Cluster (the batched side).

Each side runs :func:`topologies.graph.app.process_graph_batch` on its own wiped keyspace and
Redis database of the session stack: one side gets the whole log as one batch, the other one record
per call (what the worker did before, and what replay does).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from support.events import edge
from support.redis_servers import redis_cluster  # noqa: F401  (fixture)

from core.events import post_created
from core.settings import Settings, isolated, with_overrides
from stores import cassandra, graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from topologies.fanout.runtime import Stores
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import process_graph_batch
from topologies.graph.logic import NoPendingRequest, NotFriends

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def wiped(stack: Settings, keyspace: str, db: int, cluster_nodes: str | None = None) -> Stores:
    s = isolated(stack, keyspace, db)
    if cluster_nodes:  # a real Redis Cluster (db 0): the cluster paths of the graph scripts
        s = s.model_copy(update={"redis_cluster_nodes": cluster_nodes})
    redis_store.client(s).flushdb()
    c = cassandra.cluster(s).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    c.cluster.shutdown()
    return Stores(with_overrides(s, celebrity_threshold=2, backfill_limit=5, timeline_cap=50))


def records(events: list[tuple[str, dict[str, Any], int]]) -> list[SourceRecord]:
    """graph.v1 records at offsets 0.., each event occurring at ``T0 + dt`` ms."""
    out = []
    for off, (name, v, dt) in enumerate(events):
        out.append(SourceRecord("graph.v1", 0, off, None, name, {**v, "occurred_at": T0 + dt}, 0))
    return out


def snapshot(st: Stores, users: list[str]) -> dict[str, Any]:
    """Every graph view of ``users``: Redis sets, negatives, timelines, counts, durable edges, clocks."""
    r, s = st.r, st.s
    out: dict[str, Any] = {}
    for u in users:
        out[u] = {
            **{kind: sorted(graph._s(r.smembers(key(u)))) for kind, key in graph.KIND_KEYS.items()},
            "neg": sorted(graph._s(r.smembers(tls.k_negative(u)))),
            "timeline": [m.decode() for m in r.zrange(tls.k_timeline(u), 0, -1)],
            "counts": graph.counts(r, u),
            "durable_counts": [tuple(row) for row in s.execute(
                "SELECT followers, following, friends FROM user_counts WHERE user_id=%s", (u,))],
            **{t: sorted(graph.list_edges(s, t, u)) for t in ("followers", "following", "friends", "blocks")},
            "requests": sorted(row.from_id for row in s.execute(
                "SELECT from_id FROM friend_requests WHERE to_id=%s", (u,))),
        }
    out["clocks"] = sorted((row.pair, row.edge, row.version) for row in s.execute("SELECT * FROM edge_clocks"))
    return out


@pytest.fixture(scope="module", params=["redis", "cluster"])
def sides(request: pytest.FixtureRequest, stack: Settings) -> tuple[Stores, Stores]:
    """(batched, one at a time). ``cluster``: the batched side on a real 3-master Redis Cluster, so
    the graph worker's cluster path (plain per-key commands instead of its state/apply scripts,
    one pipeline per node) must leave what the single-Redis scripts leave."""
    if request.param == "redis":
        return wiped(stack, "fs_graph_batch_a", 11), wiped(stack, "fs_graph_batch_b", 12)
    batched = wiped(stack, "fs_graph_batch_c", 0, request.getfixturevalue("redis_cluster").nodes)
    assert redis_store.is_cluster(batched.r)
    return batched, wiped(stack, "fs_graph_batch_d", 13)


def test_a_batch_leaves_the_stores_as_one_at_a_time_and_a_redelivery_changes_nothing(sides):
    a, b, c, d = (f"gb-{x}-{uuid.uuid4().hex[:6]}" for x in "abcd")
    users = [a, b, c, d]
    batched, single = sides
    posts = [post_created(b), post_created(b, visibility="FRIENDS"), post_created(c)]
    for st in sides:  # b and c have posts (back-fill, purge)
        post_store.write_posts_durable(st.s, posts)
    log = [
        (*edge("Followed", a, b), 1), (*edge("Unfollowed", a, b), 2), (*edge("Followed", a, b), 3),
        (*edge("Followed", c, b), 4), (*edge("Followed", d, b), 5),  # b becomes a celebrity (threshold 2)
        (*edge("Followed", a, b), 1),  # re-sent, older than the applied events on the edge: ignored
        (*edge("FriendRequestSent", a, c), 6), (*edge("FriendRequestAccepted", a, c), 7),
        (*edge("FriendRequestAccepted", a, c), 8),  # no longer pending: refused
        (*edge("Unfriended", c, d), 9),  # not friends: refused
        (*edge("Followed", d, c), 10), (*edge("Blocked", c, d), 11), (*edge("Followed", d, c), 12),
        (*edge("Unblocked", c, d), 13), (*edge("FriendRequestSent", d, a), 14),
        (*edge("Unfriended", a, c), 15), (*edge("Followed", a, c), 16),
        (*edge("FriendRequestDeclined", d, a), 17), (*edge("Followed", b, c), 18),
    ]
    recs = records(log)
    whole = process_graph_batch(batched, recs)
    one = [process_graph_batch(single, [rec])[0] for rec in recs]
    kinds = lambda res: [type(x).__name__ if isinstance(x, Exception)
                         else sorted((w.reader_id, w.post_id, w.author_id, w.op) for w in x) for _, x in res]
    assert kinds(whole) == kinds(one)
    assert isinstance(whole[8][1], NoPendingRequest) and isinstance(whole[9][1], NotFriends)
    assert whole[5][1] == []  # the stale re-send: no writes
    first = snapshot(batched, users)
    assert first == snapshot(single, users)
    assert first[c]["blk"] == [] and first[a]["friends"] == [] and first[a]["fing"] == sorted([b, c])
    assert first[b]["fers"] == sorted([a, c, d]) and first[b]["counts"]["followers"] == 3
    assert first[d]["timeline"] == []  # b was a celebrity by then; c's post purged by the block
    assert len(first[c]["timeline"]) == 1  # b's public post, back-filled before b became a celebrity

    process_graph_batch(batched, recs)  # redelivered: nothing changes
    again = snapshot(batched, users)
    assert {u: {k: v for k, v in again[u].items() if v != first[u][k]} for u in users} == {u: {} for u in users}
    assert again == first


def test_counts_equal_a_recount_of_the_edges_after_a_batch_and_its_redelivery(sides):
    batched, _ = sides
    us = [f"gc-{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
    log = [(*edge("Followed", f, e), i) for i, (f, e) in enumerate((f, e) for f in us for e in us[:4] if f != e)]
    log += [(*edge("Unfollowed", us[5], us[0]), 100), (*edge("Blocked", us[0], us[6]), 101),
            (*edge("FriendRequestSent", us[1], us[2]), 102), (*edge("FriendRequestAccepted", us[1], us[2]), 103)]
    recs = records(log)
    for _ in range(2):
        process_graph_batch(batched, recs)
        for u in us:
            followers = graph.list_edges(batched.s, "followers", u)
            following = graph.list_edges(batched.s, "following", u)
            friends = graph.list_edges(batched.s, "friends", u)
            want = (len(followers), len(following), len(friends))
            row = batched.s.execute("SELECT followers, following, friends FROM user_counts WHERE user_id=%s",
                                    (u,)).one()
            assert tuple(row) == want
            assert tuple(graph.counts(batched.r, u).values()) == want
