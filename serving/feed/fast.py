"""The home feed's common case on the event loop: one Redis script call, no thread-pool hop.

:func:`fast_feed` answers a page only when Redis alone can answer it exactly as
:func:`serving.feed.pipeline.read_feed` would (see :mod:`stores.feedpage` for the conditions: the
reader is cached and needs no rebuild, celebrity caches answer, every candidate's body is cached,
private posts' authors have their graph sets loaded, one candidate window fills the page). Anything
else returns None and the caller runs the full pipeline (rebuilds, Cassandra read-through, refills,
degradation) on the read pool. Hot-count and profile misses of the page are read through on the pool
(Cassandra only on a miss). The script returns the bodies pre-serialized (``post:{id}`` JSON).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from models.features import AuthorContext
from serving.feed.engines import ReadEngines
from serving.feed.ranker import chronological, rank_or_fallback_async, wants_context
from serving.readers import media
from serving.readers.base import REDIS_ERRORS, Down
from stores import feedpage
from stores import redis as redis_store
from stores.media import k_state
from stores.users import display

Post = dict[str, Any]


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def author_block(user_id: str, raw: list[bytes]) -> dict[str, Any]:
    """The item's ``author`` from a cached profile hash (flat, as HGETALL answers): equal to
    ``display({"user_id": user_id, **users._decode(pairs)}, user_id)``, without decoding the other fields."""
    block: dict[str, Any] = {"user_id": user_id, "handle": None, "display_name": None, "avatar_url": None}
    for k, v in zip(raw[::2], raw[1::2]):
        if k in _AUTHOR_FIELDS:
            block[_AUTHOR_FIELDS[k]] = v.decode() if v else None
    return block


_AUTHOR_FIELDS = {b"handle": "handle", b"display_name": "display_name", b"avatar_url": "avatar_url"}


def counts_of(raw: list[bytes]) -> dict[str, Any]:
    """API counts from a ``cnt:{post_id}`` hash (flat, as HGETALL answers): equal to
    ``counts_dict(counters.parse_hot_counts(pairs))`` (every value must be an integer; zero reactions
    are left out), in one pass."""
    likes = comments = shares = 0
    reactions: dict[str, int] = {}
    for k, v in zip(raw[::2], raw[1::2]):
        n = int(v)
        if k == b"likes":
            likes = n
        elif k == b"comments":
            comments = n
        elif k == b"shares":
            shares = n
        elif k[:2] == b"r:" and n:
            reactions[k[2:].decode()] = n
    return {"likes": likes, "comments": comments, "shares": shares, "reactions": reactions}


async def _items(e: ReadEngines, page: feedpage.RawPage, posts: list[Post],
                 with_affinity: bool, reader: str) -> tuple[list[Post], bool]:
    """API items of ``posts`` (as :func:`serving.readers.items.shape` builds them from what
    :class:`RedisItems` reads), ``affinity`` only if asked; profile and count misses read through on the pool."""
    blocks = {a: author_block(a, raw) for a, raw in page.profiles.items()}
    counts = {x["post_id"]: counts_of(raw) for x, raw in zip(posts, page.counts) if raw}
    complete = True
    loop = asyncio.get_running_loop()
    authors = list(page.affinity) or list(dict.fromkeys(x["author_id"] for x in posts))
    if len(blocks) < len(authors):
        got = await loop.run_in_executor(e.pool, e.readers.items.redis.profiles.profiles,
                                         [a for a in authors if a not in blocks])
        blocks.update({a: display(p, a) for a, p in got.value.items()})
        complete = complete and got.complete
    missing = [x["post_id"] for x in posts if x["post_id"] not in counts]
    if missing:
        more = await loop.run_in_executor(e.pool, e.readers.items.redis.engagement.counts_partial, missing)
        counts.update(more.value)
        complete = complete and more.complete
    items = []
    for p in posts:
        a, pid = p["author_id"], p["post_id"]
        g = p.get
        item = {"post_id": g("post_id"), "author_id": g("author_id"), "text": g("text"), "media": g("media"),
                "links": g("links"), "hashtags": g("hashtags"), "mentions": g("mentions"),
                "visibility": g("visibility"), "edited": g("edited"), "created_at": g("created_at"),
                "updated_at": g("updated_at"), "author": blocks.get(a) or display(None, a),
                "counts": counts.get(pid)}
        if with_affinity:
            item["affinity"] = page.affinity.get(a, 0)
        items.append(item)
    ids = media.media_ids(items)
    if ids:  # one more round trip, only for pages that name uploaded media
        try:
            states = dict(zip(ids, media.decode(await redis_store.mget(e.aredis, [k_state(i) for i in ids])), strict=True))
        except REDIS_ERRORS:
            states = None
        media.hydrate(items, states, reader, e.settings.media_public_base)
    return items, complete


def _freshness(fresh: dict[bytes, bytes], wm: dict[bytes, bytes]) -> dict[str, Any]:
    applied = {_s(k): _s(v) for k, v in fresh.items()} or None
    age = int(time.time() * 1000) - int(applied["ts"]) if applied and "ts" in applied else None
    return {"source": "redis", "applied": applied, "age_ms": age,
            "fanout_watermarks": {_s(k): int(v) for k, v in wm.items()}}


@dataclass(frozen=True)
class Declined:
    """Not the common case (or Redis failed): the full pipeline must answer. ``limited`` says whether
    the script ran, i.e. the rate-limit buckets given to :func:`fast_page` were checked and taken."""

    limited: bool
    why: str


async def fast_feed(e: ReadEngines, reader: str, algorithm: str, limit: int,
                    before: int | None) -> dict[str, Any] | None:
    """The page :func:`~serving.feed.pipeline.read_feed` would serve from Redis, or None (not the
    common case, or Redis failed: the full pipeline decides, with its breakers and fallbacks)."""
    page = await fast_page(e, reader, algorithm, limit, before)
    return page if isinstance(page, dict) else None


async def fast_page(e: ReadEngines, reader: str, algorithm: str, limit: int, before: int | None,
                    buckets: Sequence[feedpage.BucketArgs] = ()
                    ) -> dict[str, Any] | feedpage.Limited | Declined:
    """:func:`fast_feed` with the reader's read rate-limit ``buckets`` taken in the same script call:
    the page, :class:`~stores.feedpage.Limited` (an empty bucket: answer 429), or :class:`Declined`."""
    if e.redis_breaker.state != "closed":
        return Declined(False, "redis breaker not closed")
    if redis_store.is_cluster(e.aredis):  # the script derives keys from ids: one Redis only (see stores.feedpage)
        return Declined(False, "redis cluster")
    try:
        context = algorithm == "ranked" and wants_context(e.ranker)  # the ranker's reads in the same call
        page = await feedpage.feed_page(e.page_script, reader, before, max(limit + 1, 2 * limit), limit,
                                        e.settings.celebrity_threshold, e.settings.author_cache_cap,
                                        int(time.time() * 1000), buckets, context)
    except REDIS_ERRORS as exc:
        return Declined(False, f"redis: {exc}")  # the full pipeline retries with its breakers and fallbacks
    if isinstance(page, (str, feedpage.Limited)):
        return Declined(True, page) if isinstance(page, str) else page  # a rebuild, a miss, a refill
    try:
        posts = [orjson.loads(b) for b in page.bodies]
        items, complete = await _items(e, page, posts, algorithm == "ranked", reader)
    except (*REDIS_ERRORS, Down) as exc:
        return Declined(True, f"hydration: {exc}")
    nxt = posts[-1]["post_id"] if posts and (page.more or len(posts) == limit) else None
    if algorithm == "ranked":
        ctx = None if page.context is None else {a: AuthorContext(n, f) for a, (n, f) in page.context.items()}
        ranking = await rank_or_fallback_async(e.ranker, e.ranker_breaker, e.ranker_pool, reader, items,
                                               e.ranker_timeout_s, ctx)
        items, applied, reason = ranking.items, ranking.algorithm, ranking.fallback_reason
        for it in items:
            it.pop("affinity", None)
    else:
        items, applied, reason = chronological(items), "chronological", None
    return {
        "items": items,
        "next_cursor": e.cursor_out(f"feed:{reader}", nxt),
        "ranking": {"requested": algorithm, "applied": applied,
                    "ranker": e.ranker.name if algorithm == "ranked" else None,
                    "fallback": reason is not None, "reason": reason},
        "freshness": _freshness(page.fresh, page.watermarks),
        "degraded": {"source": "redis", "hydration_partial": not complete, "notes": []},
    }


def encode(page: dict[str, Any]) -> bytes:
    """Response bytes of a page (orjson; no pydantic pass on the hot route)."""
    return orjson.dumps(page)

