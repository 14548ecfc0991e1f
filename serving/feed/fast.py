"""The home feed's common case on the event loop: async Redis pipelines, no thread-pool hop.

:func:`fast_feed` answers a page only when Redis alone can answer it exactly as
:func:`serving.feed.pipeline.read_feed` would: the reader is cached and their timeline needs no
rebuild, no followed celebrity's author cache was evicted or paged past, every candidate's body is
cached, the graph sets of private posts' authors are loaded, and one candidate window fills the page
(or ends the timeline). Anything else returns None and the caller runs the full pipeline (rebuilds,
Cassandra read-through, refills, degradation) on the read pool. Hot-count and profile misses are
read through on the pool (Cassandra only on a miss). Round trips, all pipelined:

1. reader: profile, rebuild markers, touch, timeline page, followees, freshness, watermarks;
2. followees' follower counts (which are celebrities, read at read time);
3. celebrities' author-cache pages;
4. bodies (pre-serialized JSON) and the deleted set;
5. hidden authors (+ follows/friendship of private posts' authors);
6. profiles, hot counts and affinity of the page.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import redis.asyncio as aioredis

from core.feed import merge_newest, visible_to
from serving.feed.engines import ReadEngines
from serving.feed.pipeline import page_window
from serving.feed.ranker import chronological, rank_or_fallback_async
from serving.readers.base import REDIS_ERRORS, Down, Partial
from serving.readers.engagement import counts_dict
from serving.readers.items import shape
from stores import counters, graph
from stores import posts as post_store
from stores import timelines as tls
from stores import users as users_store

Post = dict[str, Any]


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


async def _candidates(r: aioredis.Redis, reader: str, before: int | None, want: int, threshold: int, cap: int,
                      head: list[Any]) -> list[int] | None:
    """Timeline ids merged with followed celebrities' cached pages; None if a cache cannot answer."""
    own = [int(m) for m in head[6]]
    followees = sorted(_s(f) for f in head[7])
    if not followees:
        return merge_newest(own, [], before=before, limit=want)
    p = r.pipeline(transaction=False)
    for f in followees:
        p.scard(graph.k_followers(f))
    celebs = [f for f, n in zip(followees, await p.execute()) if int(n) > threshold]
    pages: list[list[int]] = []
    if celebs:
        hi = f"({before}" if before is not None else "+inf"
        p = r.pipeline(transaction=False)
        for c in celebs:
            p.zrevrangebyscore(post_store.k_author(c), hi, "-inf", start=0, num=want)
            p.zcard(post_store.k_author(c))
        res = await p.execute()
        for ids, n in zip(res[::2], res[1::2]):
            if n == 0 or (len(ids) < want and n >= cap):
                return None  # evicted or paged past its cap: the author index (Cassandra) is needed
            pages.append([int(x) for x in ids])
    celeb = merge_newest(*pages, before=before, limit=want)
    return merge_newest(own, celeb, before=before, limit=want)


async def _visible(r: aioredis.Redis, reader: str, ids: list[int]) -> list[Post] | None:
    """Cached bodies of ``ids`` that ``reader`` may see (as :meth:`Visibility.filter_hot`); None on a
    body miss or an unloaded author's graph sets."""
    p = r.pipeline(transaction=False)
    p.mget([post_store.k_post(i) for i in ids])
    p.smismember(post_store.DELETED, ids)
    raws, deleted = await p.execute()
    if not all(raws):
        return None  # a cache miss: Cassandra read-through on the pool
    posts = [orjson.loads(x) for x, d in zip(raws, deleted) if not d]
    posts = [x for x in posts if not x.get("deleted")]
    if not posts:
        return []
    private = sorted({x["author_id"] for x in posts
                      if x.get("visibility", "PUBLIC") != "PUBLIC" and x["author_id"] != reader})
    p = r.pipeline(transaction=False)
    p.smismember(tls.k_negative(reader), [x["author_id"] for x in posts])
    for a in private:
        p.exists(graph.k_loaded(a))
        p.sismember(graph.k_followers(a), reader)
        p.sismember(graph.k_friends(a), reader)
    hidden, *flags = await p.execute()
    facts = {a: flags[3 * i:3 * i + 3] for i, a in enumerate(private)}
    if any(not f[0] for f in facts.values()):
        return None  # graph sets to load from Cassandra first
    out = []
    for x, h in zip(posts, hidden):
        if h:
            continue
        f = facts.get(x["author_id"])
        if f is not None and not visible_to(x["visibility"], is_author=False, follows=bool(f[1]),
                                             is_friend=bool(f[2])):
            continue
        out.append(x)
    return out


async def _items(e: ReadEngines, r: aioredis.Redis, reader: str, posts: list[Post]) -> tuple[list[Post], bool]:
    """API items of ``posts`` (as :class:`RedisItems`); misses read through on the pool."""
    ids = [x["post_id"] for x in posts]
    authors = list(dict.fromkeys(x["author_id"] for x in posts))
    p = r.pipeline(transaction=False)
    for a in authors:
        p.hgetall(users_store.k_user(a))
    for i in ids:
        p.hgetall(counters.counts_key(i))
    if authors:
        p.hmget(counters.affinity_key(reader), authors)
    res = await p.execute() if authors else []
    people = {a: {"user_id": a, **users_store._decode(raw)} for a, raw in zip(authors, res) if raw}
    counts = {i: counts_dict(counters.parse_hot_counts(raw))
              for i, raw in zip(ids, res[len(authors):len(authors) + len(ids)]) if raw}
    affinity = {a: int(v) if v is not None else 0 for a, v in zip(authors, res[-1])} if authors else {}
    complete = True
    loop = asyncio.get_running_loop()
    if len(people) < len(authors):
        got: Partial[dict[str, Any]] = await loop.run_in_executor(
            e.pool, e.readers.items.redis.profiles.profiles, [a for a in authors if a not in people])
        people.update(got.value)
        complete = complete and got.complete
    missing = [i for i in ids if i not in counts]
    if missing:
        more = await loop.run_in_executor(e.pool, e.readers.items.redis.engagement.counts_partial, missing)
        counts.update(more.value)
        complete = complete and more.complete
    return shape(posts, people, counts, affinity), complete


def _freshness(fresh: dict[bytes, bytes], wm: dict[bytes, bytes]) -> dict[str, Any]:
    applied = {_s(k): _s(v) for k, v in fresh.items()} or None
    age = int(time.time() * 1000) - int(applied["ts"]) if applied and "ts" in applied else None
    return {"source": "redis", "applied": applied, "age_ms": age,
            "fanout_watermarks": {_s(k): int(v) for k, v in wm.items()}}


async def fast_feed(e: ReadEngines, reader: str, algorithm: str, limit: int,
                    before: int | None) -> dict[str, Any] | None:
    """The page :func:`~serving.feed.pipeline.read_feed` would serve from Redis, or None (not the
    common case, or Redis failed: the full pipeline decides, with its breakers and fallbacks)."""
    if e.redis_breaker.state != "closed":
        return None
    r = e.aredis
    want = max(limit + 1, 2 * limit)
    hi = f"({before}" if before is not None else "+inf"
    try:
        p = r.pipeline(transaction=False)
        p.exists(users_store.k_user(reader))
        p.exists(tls.k_stale(reader))
        p.exists(tls.k_timeline(reader))
        p.exists(tls.k_built(reader))
        p.exists(tls.k_ok(reader))
        p.zadd(tls.SEEN, {reader: int(time.time() * 1000)})
        p.zrevrangebyscore(tls.k_timeline(reader), hi, "-inf", start=0, num=want)
        p.smembers(graph.k_following(reader))
        p.hgetall(tls.k_fresh(reader))
        p.hgetall(tls.WATERMARK)
        head = await p.execute()
        user, stale, present, built, ok = head[:5]
        if not user or stale or not ok or (not present and not built):
            return None  # unknown/uncached reader or a rebuild: the full pipeline
        ids = await _candidates(r, reader, before, want, e.settings.celebrity_threshold,
                                e.settings.author_cache_cap, head)
        if ids is None:
            return None
        exhausted = len(ids) < want
        visible = await _visible(r, reader, ids) if ids else []
        if visible is None or (len(visible) <= limit and not exhausted):
            return None  # a miss, or filters dropped enough to need a refill
        page, nxt = page_window(visible, limit, ids[-1] if ids else before, exhausted or not ids)
        items, complete = await _items(e, r, reader, page)
    except (*REDIS_ERRORS, Down):
        return None  # the full pipeline retries with its breakers and fallbacks
    if algorithm == "ranked":
        ranking = await rank_or_fallback_async(e.ranker, e.ranker_breaker, e.ranker_pool, reader, items,
                                               e.ranker_timeout_s)
        items, applied, reason = ranking.items, ranking.algorithm, ranking.fallback_reason
    else:
        items, applied, reason = chronological(items), "chronological", None
    for it in items:
        it.pop("affinity", None)
    return {
        "items": items,
        "next_cursor": e.cursor_out(f"feed:{reader}", nxt),
        "ranking": {"requested": algorithm, "applied": applied,
                    "ranker": e.ranker.name if algorithm == "ranked" else None,
                    "fallback": reason is not None, "reason": reason},
        "freshness": _freshness(head[8], head[9]),
        "degraded": {"source": "redis", "hydration_partial": not complete, "notes": []},
    }


def encode(page: dict[str, Any]) -> bytes:
    """Response bytes of a page (orjson; no pydantic pass on the hot route)."""
    return orjson.dumps(page)

