"""The home feed: candidates -> hydrate -> visibility filters -> order -> page, with freshness.

Redis path: the precomputed timeline (rebuilt once from Cassandra if stale or evicted) merged with
the followed celebrities' recent posts (their capped Redis author cache, else the Cassandra
author index), hydrated through the post cache. Cassandra path (Redis
down): the followees' author index, hydrated from ``posts``. Pages are keyset windows on the
time-sortable post id: a page holds the newest ``limit`` visible posts below the cursor, so new
posts never shift later pages (no duplicates, no gaps); ``ranked`` reorders within the window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, cast

from core.feed import merge_newest
from serving.feed import hydrate
from serving.feed.candidates import celebrity_candidates
from serving.feed.engines import ReadEngines, Unavailable
from serving.feed.ranker import chronological, rank_or_fallback
from stores import posts as post_store
from stores import readside
from stores import timelines as tls

REFILLS = 5


@dataclass
class Window:
    """Visible posts of one page plus where the next page starts."""

    posts: list[dict[str, Any]]
    next_before: int | None
    source: str
    complete: bool = True
    notes: list[str] = field(default_factory=list)


def page_window(visible: list[dict[str, Any]], limit: int, last_examined: int | None,
                exhausted: bool) -> tuple[list[dict[str, Any]], int | None]:
    """Cut ``limit`` items from filtered candidates; the next keyset bound (None at the end)."""
    page = visible[:limit]
    if len(visible) >= limit and page:
        return page, int(page[-1]["post_id"])
    return page, None if exhausted else last_examined


def _redis_window(e: ReadEngines, reader: str, before: int | None, limit: int) -> Window:
    r, notes = e.redis, []
    _, ok = e.cass(lambda s: tls.ensure_timeline(r, s, reader, e.settings), None)
    if not ok:
        notes.append("cassandra unavailable: timeline not rebuilt, hydration from cache only")
    tls.touch_reader(r, reader)
    want = max(limit + 1, 2 * limit)
    visible: list[dict[str, Any]] = []
    cursor, exhausted, complete = before, False, ok
    for _ in range(REFILLS):
        own = tls.timeline_page(r, reader, cursor, want)
        def from_index(author: str, c: int | None = cursor) -> list[int] | None:
            got, _ = e.cass(lambda s: [pid for pid, _ in post_store.author_posts(s, author, c, want)], None)
            return got

        celeb, ok = celebrity_candidates(r, reader, cursor, want, e.settings.celebrity_threshold,
                                         e.settings.author_cache_cap, from_index)
        complete = complete and ok
        ids = merge_newest(own, celeb, before=cursor, limit=want)
        if not ids:
            exhausted = True
            break
        posts, hydrated = hydrate.posts_via_redis(e, ids)
        complete = complete and hydrated
        visible += hydrate.visible_filter(r, reader, [posts[i] for i in ids if i in posts])
        cursor = ids[-1]
        if len(ids) < want:
            exhausted = True
        if len(visible) > limit or exhausted:
            break
    page, nxt = page_window(visible, limit, cursor, exhausted)
    return Window(page, nxt, "redis", complete, notes)


def _cassandra_window(e: ReadEngines, reader: str, before: int | None, limit: int) -> Window:
    def read(s: Any) -> Window:
        want = max(limit + 1, 2 * limit)
        visible: list[dict[str, Any]] = []
        cursor, exhausted = before, False
        for _ in range(REFILLS):
            ids = readside.home_candidates(s, reader, cursor, want)
            if not ids:
                exhausted = True
                break
            posts = post_store.stored_posts(s, ids)
            visible += [posts[i] for i in ids if i in posts and not posts[i].get("deleted")]
            cursor = ids[-1]
            if len(ids) < want:
                exhausted = True
            if len(visible) > limit or exhausted:
                break
        page, nxt = page_window(visible, limit, cursor, exhausted)
        return Window(page, nxt, "cassandra")

    w, _ = e.cass(read, None)
    if w is None:
        raise Unavailable("redis and cassandra are both unavailable")
    return w


def freshness(e: ReadEngines, reader: str, source: str) -> dict[str, Any]:
    """How far fan-out has got for ``reader``: newest applied source event, its age, fan-out watermarks."""
    if source != "redis":  # no Redis, no fan-out progress to report
        return {"source": source, "applied": None, "age_ms": None, "fanout_watermarks": None}
    p = e.redis.pipeline(transaction=False)
    p.hgetall(tls.k_fresh(reader))
    p.hgetall(tls.WATERMARK)
    fresh, wm = p.execute()
    applied = {k.decode(): v.decode() for k, v in fresh.items()} or None
    age = int(time.time() * 1000) - int(applied["ts"]) if applied and "ts" in applied else None
    return {"source": source, "applied": applied, "age_ms": age,
            "fanout_watermarks": {k.decode(): int(v) for k, v in wm.items()}}


def read_feed(e: ReadEngines, reader: str, algorithm: str, limit: int, before: int | None) -> dict[str, Any]:
    """One page of ``reader``'s home feed with ranking info, freshness and degradation flags."""
    notes: list[str] = []
    w, _ = e.red(lambda r: _redis_window(e, reader, before, limit), None)
    if w is None:
        notes.append("redis unavailable: served from cassandra")
        w = _cassandra_window(e, reader, before, limit)
    notes += w.notes
    via_redis = w.source == "redis"
    enriched, _ = e.red(lambda r: hydrate.enrich(e, w.posts, via_redis=True, reader=reader), None) \
        if via_redis else (None, False)
    items, complete = enriched or hydrate.enrich(e, w.posts, via_redis=False)
    if algorithm == "ranked":
        ranking = rank_or_fallback(e.ranker, e.ranker_breaker, e.ranker_pool, reader, items, e.ranker_timeout_s)
        items, applied, reason = cast(list[dict[str, Any]], ranking.items), ranking.algorithm, ranking.fallback_reason
    else:
        items, applied, reason = cast(list[dict[str, Any]], chronological(items)), "chronological", None
    for it in items:
        it.pop("affinity", None)
    fresh, _ = e.red(lambda r: freshness(e, reader, w.source), None) if via_redis else (None, False)
    return {
        "items": items,
        "next_cursor": e.cursor_out(f"feed:{reader}", w.next_before),
        "ranking": {"requested": algorithm, "applied": applied, "ranker": e.ranker.name if algorithm == "ranked" else None,
                    "fallback": reason is not None, "reason": reason},
        "freshness": fresh or freshness(e, reader, "unknown" if via_redis else w.source),
        "degraded": {"source": w.source, "hydration_partial": not (w.complete and complete), "notes": notes},
    }


def read_known_feed(e: ReadEngines, reader: str, algorithm: str, limit: int,
                    before: int | None) -> dict[str, Any] | None:
    """:func:`read_feed` for a registered reader, or None if the reader is unknown (one pool hop)."""
    if hydrate.profile(e, reader) is None:
        return None
    return read_feed(e, reader, algorithm, limit, before)
