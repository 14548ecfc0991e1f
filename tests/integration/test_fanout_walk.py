"""The server-side fan-out walk (stores.timelines.walk_fanout) against the per-follower Python plan.

A real standalone Redis (throwaway, free port): the same graph, last-seen times and post events are
applied once through :func:`walk_fanout` (database 0) and once through ``plan_post``/``plan_delete``
+ :class:`TimelineBatch` (database 1), the path Redis Cluster uses; every key must end up equal, and
each post's writes and evicted readers must be the same sets. Covers push, friends-only audience,
an edit narrowing visibility, a delete, a celebrity, inactive readers, and an author with more
followers than one script call walks (several rounds).
"""

from __future__ import annotations

import time

import pytest
import redis
from support.redis_servers import redis_single  # noqa: F401  (fixture)

from core.feed import ADD, EDIT, Policy
from stores import graph
from stores import timelines as tls
from topologies.fanout.logic import PostRef, plan_delete, plan_post

CAP, CELEB = 5, 1500
POLICY = Policy(CELEB, 30.0, CAP, 10)
NOW = int(time.time() * 1000)


def world(r: redis.Redis) -> None:
    p = r.pipeline(transaction=False)
    p.sadd(graph.k_followers("a"), *[f"r{i}" for i in range(20)], "a")  # the author follows herself
    p.sadd(graph.k_friends("a"), *[f"r{i}" for i in range(0, 20, 3)])
    p.sadd(graph.k_followers("big"), *[f"r{i}" for i in range(1200)])  # > WALK_COUNT: 2 rounds
    p.sadd(graph.k_followers("celeb"), *[f"r{i}" for i in range(CELEB + 1)])
    p.zadd(tls.SEEN, {"r1": NOW - 40 * 86_400_000, "r4": NOW - 60 * 86_400_000, "r2": NOW, "r900": 5})
    for i in range(8):  # full timelines: the trim keeps the cap
        p.zadd(tls.k_timeline(f"r{i}"), {str(n): n for n in range(1, 6)})
    p.execute()


EVENTS = [("a", 100, ADD, "PUBLIC"), ("big", 101, ADD, "PUBLIC"), ("a", 102, ADD, "FRIENDS"),
          ("celeb", 103, ADD, "PUBLIC"), ("a", 100, EDIT, "FRIENDS"), ("a", 102, "DELETE", "FRIENDS"),
          ("big", 101, "DELETE", "PUBLIC")]


def source(i: int) -> dict:
    return {"ts": NOW, "topic": "posts.v1", "partition": 0, "offset": i}


def by_walk(r: redis.Redis) -> list[tuple[set, set]]:
    out = []
    for i, (author, pid, op, vis) in enumerate(EVENTS):
        post = tls.PostFanout(pid, author, op, op != "DELETE" and vis == "FRIENDS", source(i))
        [(writes, inactive)] = tls.walk_fanout(r, [post], cap=CAP, celebrity_threshold=CELEB,
                                               inactive_cutoff_ms=NOW - 30 * 86_400_000)
        assert len(writes) == len(set(writes)) and len(inactive) == len(set(inactive))  # each reader once
        out.append((set(writes), set(inactive)))
    return out


def by_plan(r: redis.Redis) -> list[tuple[set, set]]:
    out = []
    for i, (author, pid, op, vis) in enumerate(EVENTS):
        fol = graph.followers(r, author)
        batch = tls.TimelineBatch(r, CAP)
        inactive: list[str] = []
        if op == "DELETE":
            writes = plan_delete(pid, author, fol)
        else:
            readers = sorted(fol - {author})
            plan = plan_post(PostRef(pid, author, vis), op, fol, graph.friends(r, author),
                             tls.last_seen(r, readers), NOW, POLICY)
            batch.evict(plan.inactive)
            writes, inactive = plan.writes, plan.inactive
        batch.writes(writes, source(i))
        batch.run()
        out.append((set(writes), set(inactive)))
    return out


def dump(r: redis.Redis) -> dict:
    out = {}
    for k in r.scan_iter(count=1000):
        t = r.type(k)
        out[k] = (r.zrange(k, 0, -1, withscores=True) if t == b"zset" else r.smembers(k) if t == b"set"
                  else r.hgetall(k) if t == b"hash" else r.get(k))
    return out


@pytest.fixture()
def dbs(redis_single):  # noqa: F811
    a, b = (redis.Redis(port=redis_single.ports[0], db=n) for n in (0, 1))
    for r in (a, b):
        r.flushdb()
        world(r)
    return a, b


def test_walk_applies_exactly_what_the_python_plan_applies(dbs):
    walk_db, plan_db = dbs
    walked, planned = by_walk(walk_db), by_plan(plan_db)
    assert walked == planned
    assert dump(walk_db) == dump(plan_db)
    assert len(walked[1][0]) == 1 + 1200 - 3  # the big author: her own timeline, every active follower
    assert walked[3][0] == {w for w in walked[3][0] if w.reader_id == "celeb"}  # celebrity: pull
    assert walked[0][1] == {"r1", "r4"} and walk_db.exists(tls.k_stale("r1"))  # inactive: evicted
    assert walk_db.zrevrange(tls.k_timeline("r0"), 0, -1) == [b"100", b"5", b"4"]  # trimmed at each ADD
    assert {w.op for w in walked[4][0] if w.reader_id != "a"} == {"EDIT", "REMOVE"}


def test_walking_a_batch_equals_walking_post_by_post(dbs):
    one_by_one, batched = dbs
    by_walk(one_by_one)
    posts = [tls.PostFanout(pid, author, op, op != "DELETE" and vis == "FRIENDS", source(i))
             for i, (author, pid, op, vis) in enumerate(EVENTS) if op == ADD]
    rest = [(i, e) for i, e in enumerate(EVENTS) if e[2] != ADD]
    tls.walk_fanout(batched, posts, cap=CAP, celebrity_threshold=CELEB, inactive_cutoff_ms=NOW - 30 * 86_400_000)
    for i, (author, pid, op, vis) in rest:
        tls.walk_fanout(batched, [tls.PostFanout(pid, author, op, op != "DELETE" and vis == "FRIENDS", source(i))],
                        cap=CAP, celebrity_threshold=CELEB, inactive_cutoff_ms=NOW - 30 * 86_400_000)
    timelines = lambda r: {k: v for k, v in dump(r).items() if k.startswith(b"tl:")}
    assert timelines(one_by_one) == timelines(batched)


def test_a_scripted_pipeline_loads_its_scripts_in_its_own_round_trip(redis_single):  # noqa: F811
    """The fan-out's pipelines (stores.redis.pipeline) send SCRIPT LOAD ahead of their EVALSHAs in
    the same round trip, instead of redis-py's SCRIPT EXISTS round trip before each execute."""
    from stores import redis as redis_store
    r = redis.Redis(port=redis_single.ports[0], db=2)
    r.script_flush()  # as after a Redis restart: the EVALSHA alone would fail with NOSCRIPT
    r.config_resetstat()
    p = redis_store.pipeline(r)
    p.set("x", "1")
    r.register_script("return redis.call('GET', KEYS[1])")(keys=["x"], client=p)
    assert p.execute() == [True, b"1"]  # the SCRIPT LOAD reply is not among the results
    stats = r.info("commandstats")
    assert stats["cmdstat_script|load"]["calls"] == 1 and "cmdstat_script|exists" not in stats
    assert stats["cmdstat_evalsha"]["calls"] == 1
