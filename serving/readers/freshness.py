"""How far fan-out has got for a reader: newest applied source event, its age, fan-out watermarks.

Only Redis holds fan-out progress; a page served from Cassandra (or when Redis stopped answering
after the page was read) reports an empty freshness naming its source.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import redis as _redis

from serving.readers.base import Down, Guard
from stores import timelines as tls

Fresh = dict[str, Any]


class FreshnessReader(Protocol):
    """Fan-out progress for one reader."""

    @property
    def source(self) -> str: ...

    def freshness(self, reader: str) -> Fresh:
        """``source``, ``applied``, ``age_ms``, ``fanout_watermarks`` (raises ``Down``)."""
        ...


def blank(source: str) -> Fresh:
    """Freshness with nothing to report."""
    return {"source": source, "applied": None, "age_ms": None, "fanout_watermarks": None}


class RedisFreshness:
    """``fresh:{reader}`` and the fan-out watermarks, one round trip."""

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis]) -> None:
        self.redis = redis

    def freshness(self, reader: str) -> Fresh:
        """The newest source event applied to ``reader``'s timeline and how old it is."""
        with self.redis.open() as r:
            p = r.pipeline(transaction=False)
            p.hgetall(tls.k_fresh(reader))
            p.hgetall(tls.WATERMARK)
            fresh, wm = p.execute()
        applied = {k.decode(): v.decode() for k, v in fresh.items()} or None
        age = int(time.time() * 1000) - int(applied["ts"]) if applied and "ts" in applied else None
        return {"source": "redis", "applied": applied, "age_ms": age,
                "fanout_watermarks": {k.decode(): int(v) for k, v in wm.items()}}


class NoFreshness:
    """The Cassandra side: no fan-out progress to report, always blank."""

    source = "cassandra"

    def freshness(self, reader: str) -> Fresh:
        """Blank freshness naming Cassandra."""
        return blank(self.source)


class Freshness:
    """Freshness of a page by the engine that served it."""

    def __init__(self, redis: RedisFreshness, cassandra: FreshnessReader) -> None:
        self.redis, self.cassandra = redis, cassandra

    def of(self, reader: str, source: str) -> Fresh:
        """Redis progress for a Redis-served page ("unknown" if Redis stopped answering), else blank."""
        if source == self.cassandra.source:
            return self.cassandra.freshness(reader)
        if source != self.redis.source:
            return blank(source)
        try:
            return self.redis.freshness(reader)
        except Down:
            return blank("unknown")
