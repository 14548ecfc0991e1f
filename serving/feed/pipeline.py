"""The home feed, straight through: window -> hydrate -> filter -> rank -> page, with freshness.

The window is read from one engine's readers: Redis first (the precomputed timeline, rebuilt once
from Cassandra if stale or evicted, merged with the followed celebrities' recent posts, hydrated
through the post cache, filtered on Redis graph facts); if Redis goes down anywhere in it, the whole
window is read again from Cassandra (the followees' author index, hydrated from ``posts``, filtered on
the durable copy of the moderation decisions). Pages
are keyset windows on the time-sortable post id: a page holds the newest ``limit`` visible posts
below the cursor, so new posts never shift later pages (no duplicates, no gaps); candidates are
refilled while filters drop too many. ``ranked`` reorders within the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from serving.feed.engines import ReadEngines
from serving.feed.ranker import chronological, rank_or_fallback
from serving.readers.base import Down, Unavailable
from serving.readers.bundle import Readers
from serving.readers.posts import PostsReader
from serving.readers.timeline import TimelineReader
from stores.users import k_registered

REFILLS = 5
Post = dict[str, Any]


@dataclass
class Window:
    """Visible posts of one page plus where the next page starts."""

    posts: list[Post]
    next_before: int | None
    source: str
    complete: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Path:
    """The readers one engine's window is read with: candidates, hydration, visibility filter."""

    timeline: TimelineReader
    posts: PostsReader
    visible: Callable[[str, list[Post]], list[Post]]


def redis_path(rd: Readers) -> Path:
    """Timeline + celebrities from Redis, posts via the cache, Redis graph facts for visibility."""
    return Path(rd.redis_timeline, rd.posts.redis, rd.visibility.filter_hot)


def cassandra_path(rd: Readers) -> Path:
    """Author index, ``posts`` table, deleted posts and others' posts moderation hides dropped (the index
    applied visibility; the moderation decisions come from their durable copy in Cassandra)."""
    return Path(rd.cassandra_timeline, rd.posts.cassandra, rd.visibility.filter_cold)


def page_window(visible: list[Post], limit: int, last_examined: int | None,
                exhausted: bool) -> tuple[list[Post], int | None]:
    """Cut ``limit`` items from filtered candidates; the next keyset bound (None at the end)."""
    page = visible[:limit]
    if len(visible) >= limit and page:
        return page, int(page[-1]["post_id"])
    return page, None if exhausted else last_examined


def read_window(path: Path, reader: str, before: int | None, limit: int) -> Window:
    """Candidates -> hydrate -> filter, refilled until a page is full; raises ``Down`` if an engine fails."""
    ready = path.timeline.prepare(reader)
    want = max(limit + 1, 2 * limit)
    visible: list[Post] = []
    cursor, exhausted, complete = before, False, ready.complete
    for _ in range(REFILLS):
        cand = path.timeline.candidates(reader, cursor, want)
        complete = complete and cand.complete
        ids = cand.value
        if not ids:
            exhausted = True
            break
        hydrated = path.posts.posts(ids)
        complete = complete and hydrated.complete
        visible += path.visible(reader, [hydrated.value[i] for i in ids if i in hydrated.value])
        cursor = ids[-1]
        if len(ids) < want:
            exhausted = True
        if len(visible) > limit or exhausted:
            break
    page, nxt = page_window(visible, limit, cursor, exhausted)
    return Window(page, nxt, path.timeline.source, complete, list(ready.value))


def window(rd: Readers, reader: str, before: int | None, limit: int) -> tuple[Window, list[str]]:
    """The page's window from Redis, else (Redis down) from Cassandra; notes on what degraded."""
    try:
        return read_window(redis_path(rd), reader, before, limit), []
    except Down:
        pass
    try:
        return read_window(cassandra_path(rd), reader, before, limit), ["redis unavailable: served from cassandra"]
    except Down as exc:
        raise Unavailable("redis and cassandra are both unavailable") from exc


def read_feed(e: ReadEngines, reader: str, algorithm: str, limit: int, before: int | None) -> dict[str, Any]:
    """One page of ``reader``'s home feed with ranking info, freshness and degradation flags."""
    rd = e.readers
    w, notes = window(rd, reader, before, limit)
    notes += w.notes
    hydrated = rd.items.items(w.posts, reader=reader, redis_first=w.source == "redis")
    items = hydrated.value
    if algorithm == "ranked":
        ranking = rank_or_fallback(e.ranker, e.ranker_breaker, e.ranker_pool, reader, items, e.ranker_timeout_s)
        items, applied, reason = cast(list[dict[str, Any]], ranking.items), ranking.algorithm, ranking.fallback_reason
    else:
        items, applied, reason = cast(list[dict[str, Any]], chronological(items)), "chronological", None
    for it in items:
        it.pop("affinity", None)
    return {
        "items": items,
        "next_cursor": e.cursor_out(f"feed:{reader}", w.next_before),
        "ranking": {"requested": algorithm, "applied": applied, "ranker": e.ranker.name if algorithm == "ranked" else None,
                    "fallback": reason is not None, "reason": reason},
        "freshness": rd.freshness.of(reader, w.source),
        "degraded": {"source": w.source, "hydration_partial": not (w.complete and hydrated.complete), "notes": notes},
    }


def read_known_feed(e: ReadEngines, reader: str, algorithm: str, limit: int,
                    before: int | None) -> dict[str, Any] | None:
    """:func:`read_feed` for a registered reader, or None if the reader is unknown (one pool hop).

    Registered is the profile view, or the API's registration mark (:mod:`serving.registration`):
    the users topology writes the profile asynchronously, so a reader who just signed up is known
    by the mark and gets an empty feed, not a 404, while the profile is on its way.
    """
    if e.readers.profiles.profile(reader) is None and not e.redis.exists(k_registered(reader)):
        return None
    return read_feed(e, reader, algorithm, limit, before)
