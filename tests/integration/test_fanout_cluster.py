"""Fan-out on a real 3-master Redis Cluster (issue 16): push across nodes, celebrity pull, replay.

The cluster is started from Debian's ``redis-server`` (``support.redis_servers.redis_cluster``);
Cassandra is the session stack's. The platform reaches the cluster through
``FEEDSTREAM_REDIS_CLUSTER_NODES`` (``stores.redis.client`` then returns a ``RedisCluster``), and
fan-out takes its cluster path: per-follower commands in one non-transactional pipeline, which
redis-py sends as one pipeline per node.
"""

from __future__ import annotations

import time
import uuid

import redis
from support.events import post_deleted
from support.redis_servers import redis_cluster  # noqa: F401  (fixture)

from core.events import post_created
from core.settings import isolated
from stores import cassandra, graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from stores import users as user_store
from topologies.fanout.app import author_check, process_posts
from topologies.fanout.logic import UnknownAuthor
from topologies.fanout.runtime import Stores
from topologies.faust_runtime import SourceRecord

FOLLOWERS = [f"cf{i}-{uuid.uuid4().hex[:6]}" for i in range(24)]
CELEB = 20  # "ca" has 20 followers (pushed), "cceleb" 24 (pulled at read time)


def load(r) -> None:
    """The graph topology's Redis layout for two authors, and their registration marks."""
    p = r.pipeline(transaction=False)
    for author, fol in (("ca", FOLLOWERS[:CELEB]), ("cceleb", FOLLOWERS)):
        p.set(graph.k_loaded(author), "1")
        p.sadd(graph.k_followers(author), *fol)
        p.set(user_store.k_registered(author), "1")
        for f in fol:
            p.set(graph.k_loaded(f), "1")
            p.sadd(graph.k_following(f), author)
    p.execute()


def views(r) -> dict:
    """Every follower's timeline and freshness, and the authors' caches, read through the cluster."""
    out = {}
    for f in FOLLOWERS + ["ca", "cceleb"]:
        out[f] = (r.zrevrange(tls.k_timeline(f), 0, -1), r.hget(tls.k_fresh(f), "offset"))
    out["ap"] = [r.zrevrange(post_store.k_author(a), 0, -1) for a in ("ca", "cceleb")]
    return out


def test_fanout_celebrity_and_replay_on_a_three_master_cluster(stack, redis_cluster):  # noqa: F811
    s = isolated(stack, "fs_itest_rcluster", 0).model_copy(update={
        "redis_cluster_nodes": redis_cluster.nodes, "celebrity_threshold": CELEB, "graph_user_grace_s": 0.2})
    cassandra.cluster(s).connect().execute("DROP KEYSPACE IF EXISTS fs_itest_rcluster", timeout=120)
    st = Stores(s)
    assert redis_store.is_cluster(st.r)
    load(st.r)
    now = int(time.time() * 1000)
    evs = [post_created("ca"), post_created("ca"), post_created("cceleb"), post_created("cghost")]
    evs.append(post_deleted("ca", evs[1][1]["post_id"]))
    recs = [SourceRecord("posts.v1", 0, off, None, name, {**v, "occurred_at": now}, now)
            for off, (name, v) in enumerate(evs)]
    out = process_posts(st, recs, author_check(st, proven=False))  # no users topology here
    refused = [(rec.value["author_id"], res) for rec, res in out if isinstance(res, Exception)]
    assert [(a, type(e)) for a, e in refused] == [("cghost", UnknownAuthor)]
    kept, celeb = evs[0][1]["post_id"], evs[2][1]["post_id"]
    first = views(st.r)
    for f in FOLLOWERS[:CELEB]:  # pushed to every follower, wherever its node; the deleted post removed
        assert first[f][0] == [str(kept).encode()]
        assert first[f][1] == b"4"  # freshness: the delete (offset 4) was the last applied
    assert all(first[f] == ([], None) for f in FOLLOWERS[CELEB:])  # followers of the celebrity only
    assert first["cceleb"][0] == [str(celeb).encode()]  # a celebrity's own timeline only
    assert first["ap"][1] == [str(celeb).encode()]  # followers merge it at read time from here
    assert graph.celebrity_followees(st.r, FOLLOWERS[0], CELEB) == ["cceleb"]
    nodes = [redis.Redis(port=p) for p in redis_cluster.ports]
    per_node = [sum(1 for _ in n.scan_iter(match="tl:*", count=1000)) for n in nodes]
    assert sum(per_node) == CELEB + 2 and sum(1 for n in per_node if n) >= 2

    for n in nodes:  # replay: wipe Redis, reload the graph, apply the same log again
        n.flushall()
    load(st.r)
    process_posts(st, recs, author_check(st, proven=False))
    assert views(st.r) == first


def test_cold_graph_sets_load_on_the_cluster_then_fan_out(stack, redis_cluster):  # noqa: F811
    """A Redis that lost the graph (no ``g:ok:`` markers): fan-out's ``graph.ensure_loaded`` reloads
    the authors' 7 keys, hash-tagged into one slot per user, from Cassandra by the conditional load
    script (one pipeline per node), then pushes."""
    s = isolated(stack, "fs_itest_rcluster_cold", 0).model_copy(update={
        "redis_cluster_nodes": redis_cluster.nodes, "celebrity_threshold": CELEB, "graph_user_grace_s": 0.2})
    cassandra.cluster(s).connect().execute("DROP KEYSPACE IF EXISTS fs_itest_rcluster_cold", timeout=120)
    st = Stores(s)
    for n in (redis.Redis(port=p) for p in redis_cluster.ports):
        n.flushall()
    tag = uuid.uuid4().hex[:6]
    author, fans, blocked = f"cold-{tag}", [f"cold{i}-{tag}" for i in range(12)], f"blk-{tag}"
    rows = [("followers", "follower_id", author, f) for f in fans]
    rows += [("following", "followee_id", f, author) for f in fans]
    rows += [("friends", "friend_id", author, fans[0]), ("blocks", "blocked_id", author, blocked)]
    for table, col, u, m in rows:
        st.s.execute(f"INSERT INTO {table} (user_id, {col}, since) VALUES (%s, %s, 1)", (u, m))
    st.r.set(user_store.k_registered(author), "1")
    keys = [graph.k_loaded(author), graph.k_followers(author), graph.k_friends(author), graph.k_blocks(author)]
    assert len({st.r.keyslot(k) for k in keys}) == 1  # one user's keys: one slot, so one script call

    assert graph.ensure_loaded(st.r, st.s, [author, fans[0]]) == sorted([author, fans[0]])
    assert graph.followers(st.r, author) == set(fans)
    assert graph.friends(st.r, author) == {fans[0]} and st.r.smembers(graph.k_blocks(author)) == {blocked.encode()}
    assert st.r.smembers(tls.k_negative(author)) == {blocked.encode()}
    assert graph.following(st.r, fans[0]) == {author}
    assert graph.ensure_loaded(st.r, st.s, [author, fans[0]]) == []  # warm: nothing to load

    now = int(time.time() * 1000)
    _, v = post_created(fans[1])  # a cold author: loaded by fan-out itself before the push
    st.r.set(user_store.k_registered(fans[1]), "1")
    _, mine = post_created(author)
    recs = [SourceRecord("posts.v1", 0, off, None, "PostCreated", {**ev, "occurred_at": now}, now)
            for off, ev in enumerate((mine, v))]
    out = process_posts(st, recs, author_check(st, proven=False))
    assert [len(w) for _, w in out] == [1 + len(fans), 1]  # the author's own timeline, every follower
    assert all(st.r.zscore(tls.k_timeline(f), str(mine["post_id"])) is not None for f in fans)
    assert st.r.exists(graph.k_loaded(fans[1]))
