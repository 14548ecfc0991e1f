"""Interleaved A/B of fan-out store paths in one process, next to the pipelined ZADD ceiling.

``python -m bench.fanout_ab [--rounds N]``: the previous per-event path (c64e0f9: ~7 round trips and
one client reply per Redis command), ``process_posts`` one post per call, and 50 posts per call,
alternated in random order over the same seeded power-law graph (2,000 users, mean 50 followers),
so load drift on a shared machine hits all three alike. Keyspace ``fs_bench_fanout``, Redis db 8.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Mapping
from typing import Any

import redis as _redis

from bench.fanout import load_graph, power_law_graph, zadd_ceiling
from core.events import post_created
from core.feed import ADD, REMOVE, TimelineWrite
from core.settings import get_settings, isolated, with_overrides
from stores import graph
from stores import posts as post_store
from stores import timelines as tls
from topologies.fanout.app import process_posts
from topologies.fanout.logic import PostRef, plan_post
from topologies.fanout.runtime import Stores, source_of
from topologies.faust_runtime import SourceRecord


def previous_apply_writes(r: _redis.Redis, writes: list[TimelineWrite], *, cap: int,
                          source: Mapping[str, Any], chunk: int = 2000) -> None:
    """The previous worker's timeline writes: four pipelined commands (each with its reply) per write."""
    fresh = {k: str(v) for k, v in source.items()}
    for i in range(0, len(writes), chunk):
        p = r.pipeline(transaction=False)
        for w in writes[i:i + chunk]:
            key = tls.k_timeline(w.reader_id)
            if w.op == REMOVE:
                p.zrem(key, str(w.post_id))
            else:
                p.zadd(key, {str(w.post_id): w.post_id})
            p.zremrangebyrank(key, 0, -(cap + 1))
            p.publish(tls.channel(w.reader_id), json.dumps(
                {"post_id": w.post_id, "author_id": w.author_id, "op": w.op}))
            p.hset(tls.k_fresh(w.reader_id), mapping=fresh)
        p.execute()


def previous_process_post(st: Stores, rec: SourceRecord) -> list[TimelineWrite]:
    """The PostCreated path of the previous per-event worker (same store functions, same order)."""
    v, tl = rec.value, st.settings
    post_store.put_post(st.s, st.r, v, edited=False)
    post_store.trim_author_cache(st.r, v["author_id"], tl.author_cache_cap)
    post = PostRef(v["post_id"], v["author_id"], v["visibility"])
    followers = sorted(graph.followers(st.r, post.author_id))
    plan = plan_post(post, ADD, followers, set(), tls.last_seen(st.r, followers),
                     int(time.time() * 1000), tl.policy)
    tls.evict_inactive(st.r, plan.inactive)
    previous_apply_writes(st.r, plan.writes, cap=tl.timeline_cap, source=source_of(rec))
    tls.mark_watermark(st.r, rec.topic, rec.partition, rec.offset)
    return plan.writes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    s = isolated(get_settings(), "fs_bench_fanout", 8)
    st = Stores(with_overrides(s, celebrity_threshold=10**9, inactive_days=10**6))
    r = st.r
    r.flushdb()
    _ = st.s  # connect and migrate before timing
    g = power_law_graph(2000, 50, 1.5, 7)
    load_graph(r, g)
    rng = random.Random(7)
    authors = list(g)
    t = {"previous": 0.0, "single": 0.0, "batch50": 0.0, "zadd_ceiling": 0.0}
    n = dict.fromkeys(t, 0)
    for _round in range(args.rounds):
        posts = [post_created(rng.choice(authors))[1] for _ in range(150)]
        recs = [SourceRecord("posts.v1", 0, i, None, "PostCreated", p, 0) for i, p in enumerate(posts)]
        chunks = {"previous": recs[:50], "single": recs[50:100], "batch50": recs[100:]}
        for name in rng.sample(list(chunks), 3):
            c, t0 = chunks[name], time.perf_counter()
            if name == "previous":
                n[name] += sum(len(previous_process_post(st, x)) for x in c)
            elif name == "single":
                n[name] += sum(len(process_posts(st, [x])[0][1]) for x in c)
            else:
                n[name] += sum(len(w) for _, w in process_posts(st, c))
            t[name] += time.perf_counter() - t0
        d = [(f, p["post_id"]) for p in posts for f in g[p["author_id"]]]
        t0 = time.perf_counter()
        zadd_ceiling(r, d)
        t["zadd_ceiling"] += time.perf_counter() - t0
        n["zadd_ceiling"] += len(d)
    ceil = n["zadd_ceiling"] / t["zadd_ceiling"]
    out = {k: {"deliveries_per_s": n[k] / t[k], "ratio": n[k] / t[k] / ceil, "deliveries": n[k]} for k in t}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
