"""Engagement totals of posts (and a reader's affinity to authors): Redis hot counts or Cassandra totals.

A post missing from the hot counts (Redis lost or flushed, or never engaged with) is read from
Cassandra's durable totals and re-warmed in Redis, never shown as zero (issue #13, defect 4).
"""

from __future__ import annotations

from typing import Any, Protocol

import redis as _redis
from cassandra.cluster import Session

from core.rows import Counts
from serving.readers.base import Down, Guard, Partial
from stores import counters, readside

Totals = dict[str, Any]


class EngagementReader(Protocol):
    """Engagement totals per post id (API form: likes, comments, shares, reactions)."""

    @property
    def source(self) -> str: ...

    def counts(self, ids: list[int]) -> dict[int, Totals]:
        """Totals of ``ids`` (raises :class:`~serving.readers.base.Down` if this engine is down)."""
        ...


def counts_dict(c: Counts) -> Totals:
    """API form of engagement totals."""
    return {"likes": c.likes, "comments": c.comments, "shares": c.shares, "reactions": dict(c.reactions)}


def _counts(t: Totals) -> Counts:
    return Counts(t["likes"], t["comments"], t["shares"], dict(t["reactions"]))


class RedisEngagement:
    """Hot counts and affinities kept in Redis by the engagement topology; hot-count misses are
    read through to Cassandra (and re-warmed)."""

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis], cassandra: Guard[Session] | None = None) -> None:
        self.redis, self.cassandra = redis, cassandra

    def counts(self, ids: list[int]) -> dict[int, Totals]:
        """Totals of every id (see :meth:`counts_partial`)."""
        return self.counts_partial(ids).value

    def counts_partial(self, ids: list[int]) -> Partial[dict[int, Totals]]:
        """Hot counts, misses from Cassandra; incomplete (misses as zeros) if Cassandra is down."""
        if not ids:
            return Partial({})
        with self.redis.open() as r:
            out = {k: counts_dict(v) for k, v in counters.cached_hot_counts(r, ids).items()}
            missing = [i for i in dict.fromkeys(ids) if i not in out]
            if not missing:
                return Partial(out)
            try:
                if self.cassandra is None:
                    raise Down("no durable reader")
                with self.cassandra.open() as s:
                    durable = readside.engagement_totals(s, missing)
            except Down:
                out.update({i: counts_dict(Counts()) for i in missing})
                return Partial(out, False)
            counters.warm_hot_counts(r, {i: _counts(t) for i, t in durable.items()})
            out.update(durable)
            return Partial(out)

    def affinity(self, reader: str, authors: list[str]) -> dict[str, int]:
        """``reader``'s standing engagement with each author."""
        with self.redis.open() as r:
            return counters.hot_affinity(r, reader, authors)


class CassandraEngagement:
    """Durable engagement totals (``engagement_state``)."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra

    def counts(self, ids: list[int]) -> dict[int, Totals]:
        """Totals of every id (zeros if none)."""
        with self.cassandra.open() as s:
            return readside.engagement_totals(s, ids)
