"""Recovery after a Redis loss: feeds, counts and fan-out right again, with no manual replay.

``python -m bench.redis_loss [--users N] [--mean F] [--posts P] [--celebrity T]`` on the stack
configured by ``FEEDSTREAM_*`` (its own keyspace ``fs_bench_redisloss`` and Redis db 11, both
wiped first). Saves JSON under ``.feedstream/bench/redis_loss.json``.

1. Builds a world through the workers' own functions (``process_graph_batch``, ``process_posts``):
   a power-law follow graph, ``P`` posts per user (some FOLLOWERS/FRIENDS only), friendships,
   blocks and deletes; every reader's first page is read once (warm).
2. ``FLUSHDB`` of the Redis database (what a restart of a Redis without persistence leaves).
3. Fan-out of a new batch of posts into the cold Redis, then every reader's first page through the
   read API's Redis path, timed per reader, and every profile's counts.

Correctness: each page equals the same reader's page from the Cassandra-only path (the author
index, independent of Redis), and each user's counts equal ``user_counts`` in Cassandra and the
graph that was built. Recovery time = flush to the last reader's first page (one thread).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from core.events import new_event, post_created
from core.settings import Settings, get_settings, isolated, with_overrides
from models.ranking import EngagementRecencyRanker
from serving.feed.engines import ReadEngines
from serving.feed.pipeline import cassandra_path, read_window, redis_path
from stores import cassandra as cassandra_store
from stores import readside
from stores import redis as redis_store
from topologies.fanout.app import process_posts
from topologies.fanout.runtime import Stores
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import process_graph_batch

KEYSPACE, DB = "fs_bench_redisloss", 11


def _rec(topic: str, off: int, name: str, value: dict[str, Any]) -> SourceRecord:
    return SourceRecord(topic, 0, off, None, name, value, int(time.time() * 1000))


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def build_world(st: Stores, users: list[str], mean: float, posts_per_user: int, seed: int) -> dict[str, Any]:
    """Follows, friendships, blocks, posts and deletes through the workers' functions."""
    rng = random.Random(seed)
    n = len(users)
    graph_recs: list[SourceRecord] = []
    follows: set[tuple[str, str]] = set()
    raw = [rng.paretovariate(1.5) for _ in users]
    scale = mean / statistics.fmean(raw)
    for u, x in zip(users, raw):  # u is followed by a Pareto-distributed number of users
        for f in rng.sample(users, min(n - 1, max(1, int(x * scale)))):
            if f != u:
                follows.add((f, u))
    for f, u in sorted(follows):
        graph_recs.append(_rec("graph.v1", len(graph_recs), "Followed", new_event(f, follower_id=f, followee_id=u)))
    for _ in range(max(1, n // 20)):  # friendships
        a, b = rng.sample(users, 2)
        graph_recs.append(_rec("graph.v1", len(graph_recs), "FriendRequestSent", new_event(a, from_id=a, to_id=b)))
        graph_recs.append(_rec("graph.v1", len(graph_recs), "FriendRequestAccepted", new_event(b, from_id=a, to_id=b)))
    for _ in range(max(1, n // 50)):  # blocks
        a, b = rng.sample(users, 2)
        graph_recs.append(_rec("graph.v1", len(graph_recs), "Blocked", new_event(a, blocker_id=a, blocked_id=b)))
    for i in range(0, len(graph_recs), 200):
        process_graph_batch(st, graph_recs[i:i + 200])
    post_recs, pids = [], []
    for _ in range(posts_per_user):
        for u in users:
            vis = rng.choices(["PUBLIC", "FOLLOWERS", "FRIENDS"], [8, 1, 1])[0]
            name, v = post_created(u, visibility=vis)
            post_recs.append(_rec("posts.v1", len(post_recs), name, v))
            pids.append((u, v["post_id"]))
    for _, pid in rng.sample(pids, max(1, len(pids) // 50)):  # deletes
        author = next(a for a, p in pids if p == pid)
        post_recs.append(_rec("posts.v1", len(post_recs), "PostDeleted",
                              new_event(author, post_id=pid, author_id=author)))
    for i in range(0, len(post_recs), 100):
        process_posts(st, post_recs[i:i + 100])
    return {"follows": len(follows), "graph_events": len(graph_recs), "post_events": len(post_recs)}


def compare(reads: ReadEngines, st: Stores, users: list[str], limit: int) -> dict[str, Any]:
    """Every reader's first page (Redis path, timed) against the Cassandra-only path; counts too."""
    rd = reads.readers
    lat, bad_feeds, bad_counts = [], [], []
    t0 = time.perf_counter()
    for u in users:
        t = time.perf_counter()
        hot = [p["post_id"] for p in read_window(redis_path(rd), u, None, limit).posts]
        lat.append((time.perf_counter() - t) * 1000)
        if hot != [p["post_id"] for p in read_window(cassandra_path(rd), u, None, limit).posts]:
            bad_feeds.append(u)
    feeds_s = time.perf_counter() - t0  # includes the Cassandra reference reads
    t1 = time.perf_counter()
    for u in users:
        durable = readside.counts(st.s, u) or {"followers": 0, "following": 0, "friends": 0}
        if rd.graph.counts(u) != durable:
            bad_counts.append(u)
    return {"feeds_wrong": len(bad_feeds), "counts_wrong": len(bad_counts), "examples": bad_feeds[:5] + bad_counts[:5],
            "first_read_ms_p50": round(_pct(lat, 0.5), 1), "first_read_ms_p99": round(_pct(lat, 0.99), 1),
            "first_read_ms_max": round(max(lat), 1), "reads_ms_total": round(sum(lat), 1),
            "feeds_and_reference_s": round(feeds_s, 2), "counts_s": round(time.perf_counter() - t1, 2)}


def run(settings: Settings, *, users: int = 500, mean: float = 15.0, posts: int = 3, celebrity: int = 100,
        limit: int = 50, seed: int = 7) -> dict[str, Any]:
    """Build, read warm, flush, fan out a batch into the cold Redis, read everything; the figures."""
    s = with_overrides(isolated(settings, KEYSPACE, DB), celebrity_threshold=celebrity)
    r = redis_store.client(s)
    r.flushdb()
    c = cassandra_store.cluster(s).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    c.cluster.shutdown()
    st = Stores(s)
    tag = uuid.uuid4().hex[:6]
    ids = [f"rl{tag}-{i}" for i in range(users)]
    t = time.perf_counter()
    world = build_world(st, ids, mean, posts, seed)
    world["build_s"] = round(time.perf_counter() - t, 1)
    reads = ReadEngines(s, EngagementRecencyRanker())
    try:
        warm = compare(reads, st, ids, limit)  # first read in this Redis (rebuild), then warm reads
        warm_again = compare(reads, st, ids, limit)
        keys_before = r.dbsize()
        r.flushdb()  # the loss
        t_loss = time.perf_counter()
        rng = random.Random(seed + 1)
        new = [post_created(a) for a in rng.sample(ids, 20)]
        recs = [_rec("posts.v1", 10_000_000 + i, n, v) for i, (n, v) in enumerate(new)]
        t = time.perf_counter()
        out = process_posts(st, recs)
        fanout_ms = (time.perf_counter() - t) * 1000
        deliveries = sum(len(w) for _, w in out)
        after = compare(reads, st, ids, limit)
        recovery_s = time.perf_counter() - t_loss
        # every new post is in its author's and each (loaded) follower's feed
        missing_new = 0
        for (_, v) in new:
            fol = set(readside.edge_page(st.s, "followers", v["author_id"], "", 100_000))
            for reader in {v["author_id"], *fol}:
                page = read_window(redis_path(reads.readers), reader, None, limit).posts
                if v["post_id"] not in {p["post_id"] for p in page} and len(page) < limit:
                    missing_new += 1
        return {"users": users, "mean_followers": mean, "posts_per_user": posts, "celebrity_threshold": celebrity,
                "world": world, "redis_keys_before_loss": keys_before, "warm_first_read": warm,
                "warm": warm_again, "cold_fanout_batch": {"posts": len(recs), "deliveries": deliveries,
                                                          "ms": round(fanout_ms, 1)},
                "after_loss": after, "new_posts_missing": missing_new,
                "recovery_s_all_readers_once": round(recovery_s, 2)}
    finally:
        reads.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--mean", type=float, default=15.0)
    ap.add_argument("--posts", type=int, default=3)
    ap.add_argument("--celebrity", type=int, default=100)
    args = ap.parse_args()
    res = run(get_settings(), users=args.users, mean=args.mean, posts=args.posts, celebrity=args.celebrity)
    out = Path(".feedstream/bench/redis_loss.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
