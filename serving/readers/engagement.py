"""Engagement totals of posts (and a reader's affinity to authors): Redis hot counts or Cassandra totals."""

from __future__ import annotations

from typing import Any, Protocol

import redis as _redis
from cassandra.cluster import Session

from core.rows import Counts
from serving.readers.base import Guard
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


class RedisEngagement:
    """Hot counts and affinities kept in Redis by the engagement topology."""

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis]) -> None:
        self.redis = redis

    def counts(self, ids: list[int]) -> dict[int, Totals]:
        """Hot counts of ``ids`` (posts without any are absent)."""
        with self.redis.open() as r:
            return {k: counts_dict(v) for k, v in counters.hot_counts(r, ids).items()} if ids else {}

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
