"""Home-feed candidates: the Redis timeline plus followed celebrities, or the Cassandra author index.

Redis: the precomputed timeline ``tl:{reader}`` (rebuilt once from Cassandra if stale or evicted)
merged with the followed celebrities' recent ids. Celebrities are not fanned out; their recent ids
live in the capped author cache ``ap:{author}`` that fan-out maintains. One pipelined round trip
reads every followed celebrity's page from it; only a celebrity whose cache is missing (evicted)
or was paged past its cap is read from the Cassandra author index. Cassandra (Redis down): the
followees' author index. Visibility is applied after hydration, as for every candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import redis as _redis
from cassandra.cluster import Session

from core.feed import merge_newest
from core.settings import Settings
from serving.readers.base import Down, Guard, Partial
from serving.readers.posts import CassandraPosts
from stores import graph, readside
from stores import posts as post_store
from stores import timelines as tls


class TimelineReader(Protocol):
    """A reader's home-feed candidate ids, newest first, from one engine."""

    @property
    def source(self) -> str: ...

    def prepare(self, reader: str) -> Partial[list[str]]:
        """Get ``reader``'s candidates ready; the notes say what is degraded (complete=False)."""
        ...

    def candidates(self, reader: str, before: int | None, want: int) -> Partial[list[int]]:
        """The newest ``want`` candidate ids below ``before``; incomplete if a source could not answer."""
        ...


def cached_celebrity_pages(r: _redis.Redis, celebs: list[str], before: int | None, want: int,
                           cap: int) -> tuple[list[list[int]], list[str]]:
    """Pages from ``ap:{celeb}``, and the celebrities the cache cannot answer for."""
    if not celebs:
        return [], []
    hi = f"({before}" if before is not None else "+inf"
    p = r.pipeline(transaction=False)
    for c in celebs:
        p.zrevrangebyscore(post_store.k_author(c), hi, "-inf", start=0, num=want)
        p.zcard(post_store.k_author(c))
    res = p.execute()
    pages, deep = [], []
    for c, ids, n in zip(celebs, res[::2], res[1::2]):
        if n == 0 or (len(ids) < want and n >= cap):
            deep.append(c)
        else:
            pages.append([int(x) for x in ids])
    return pages, deep


def celebrity_candidates(r: _redis.Redis, reader: str, before: int | None, want: int, threshold: int,
                         cap: int, from_index: Callable[[str], list[int] | None]) -> tuple[list[int], bool]:
    """Newest ``want`` ids of ``reader``'s followed celebrities below ``before``; ``complete`` is False
    when a celebrity needed the author index and ``from_index`` could not answer (returned None)."""
    celebs = graph.celebrity_followees(r, reader, threshold)
    pages, deep = cached_celebrity_pages(r, celebs, before, want, cap)
    complete = True
    for c in deep:
        page = from_index(c)
        if page is None:
            complete = False
        else:
            pages.append(page)
    return merge_newest(*pages, before=before, limit=want), complete


class RedisTimeline:
    """The Redis timeline and celebrity author caches; Cassandra for rebuilds and evicted celebrities."""

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis], cassandra: Guard[Session], index: CassandraPosts,
                 settings: Settings) -> None:
        self.redis, self.cassandra, self.index, self.settings = redis, cassandra, index, settings

    def prepare(self, reader: str) -> Partial[list[str]]:
        """Rebuild ``tl:{reader}`` if stale or evicted (needs Cassandra) and mark the reader active."""
        with self.redis.open() as r:
            notes: list[str] = []
            try:
                with self.cassandra.open() as s:
                    tls.ensure_timeline(r, s, reader, self.settings)
            except Down:
                notes.append("cassandra unavailable: timeline not rebuilt, hydration from cache only")
            tls.touch_reader(r, reader)
            return Partial(notes, not notes)

    def candidates(self, reader: str, before: int | None, want: int) -> Partial[list[int]]:
        """Timeline ids merged with the followed celebrities' ids."""
        def from_index(author: str) -> list[int] | None:
            try:
                return [pid for pid, _ in self.index.by_author(author, before, want)]
            except Down:
                return None

        with self.redis.open() as r:
            own = tls.timeline_page(r, reader, before, want)
            celeb, complete = celebrity_candidates(r, reader, before, want, self.settings.celebrity_threshold,
                                                   self.settings.author_cache_cap, from_index)
            return Partial(merge_newest(own, celeb, before=before, limit=want), complete)


class CassandraTimeline:
    """The followees' author index (Cassandra only), visibility by follow/friendship applied per author."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra

    def prepare(self, reader: str) -> Partial[list[str]]:
        """Nothing to prepare."""
        return Partial([])

    def candidates(self, reader: str, before: int | None, want: int) -> Partial[list[int]]:
        """Candidate ids straight from the author index."""
        with self.cassandra.open() as s:
            return Partial(readside.home_candidates(s, reader, before, want))
