"""Ranking: the :class:`Ranker` protocol (the ML ranker implements it later), a simple
engagement-and-recency scorer, and :func:`rank_or_fallback` (timeout + circuit breaker ->
chronological, reported in the response).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from serving.circuit import Breaker
from streams.ids import id_timestamp_ms

Item = Mapping[str, Any]


@runtime_checkable
class Ranker(Protocol):
    """Scores a page of hydrated feed items for a reader; higher is shown first."""

    @property
    def name(self) -> str:
        """A stable name, reported in responses."""
        ...

    def scores(self, reader: str, items: Sequence[Item]) -> list[float]:
        """One score per item, in input order."""
        ...


@dataclass(frozen=True)
class EngagementRecencyRanker:
    """``(1 + log1p(weighted engagement) + affinity bonus) * 0.5 ** (age / half_life)``."""

    name: str = "engagement-recency-v1"
    half_life_h: float = 6.0
    w_like: float = 1.0
    w_comment: float = 2.0
    w_share: float = 3.0
    w_reaction: float = 1.0
    w_affinity: float = 0.3

    def score(self, item: Item, now_ms: int) -> float:
        """The score of one item at ``now_ms``."""
        c = item.get("counts") or {}
        eng = (self.w_like * c.get("likes", 0) + self.w_comment * c.get("comments", 0)
               + self.w_share * c.get("shares", 0) + self.w_reaction * sum((c.get("reactions") or {}).values()))
        aff = self.w_affinity * math.log1p(item.get("affinity", 0) or 0)
        age_h = max(0.0, (now_ms - id_timestamp_ms(int(item["post_id"]))) / 3_600_000)
        return (1.0 + math.log1p(max(eng, 0.0)) + aff) * 0.5 ** (age_h / self.half_life_h)

    def scores(self, reader: str, items: Sequence[Item]) -> list[float]:
        """Scores of ``items`` now."""
        now = int(time.time() * 1000)
        return [self.score(it, now) for it in items]


@dataclass(frozen=True)
class Ranking:
    """The ordered items and how they were ordered."""

    items: list[Item]
    algorithm: str
    ranker: str | None
    fallback_reason: str | None = None


def chronological(items: Sequence[Item]) -> list[Item]:
    """Newest first (post ids are time-sortable)."""
    return sorted(items, key=lambda it: -int(it["post_id"]))


def order_by_scores(items: Sequence[Item], scores: Sequence[float]) -> list[Item]:
    """Items by descending score, ties newest first."""
    if len(scores) != len(items):
        raise ValueError(f"ranker returned {len(scores)} scores for {len(items)} items")
    if any(not math.isfinite(s) for s in scores):
        raise ValueError("ranker returned a non-finite score")
    return [it for _, _, it in sorted(zip(scores, (int(i["post_id"]) for i in items), items),
                                      key=lambda t: (-t[0], -t[1]))]


def rank_or_fallback(ranker: Ranker, breaker: Breaker, pool: Executor, reader: str,
                     items: Sequence[Item], timeout_s: float) -> Ranking:
    """Rank ``items`` within ``timeout_s``; on error, timeout or open breaker, fall back to chronological."""
    if not items:
        return Ranking([], "ranked", ranker.name)
    if not breaker.allow():
        return Ranking(chronological(items), "chronological", ranker.name, "ranker circuit open")
    try:
        scores = pool.submit(ranker.scores, reader, list(items)).result(timeout=timeout_s)
        ordered = order_by_scores(items, scores)
    except FutureTimeout:
        breaker.failure()
        return Ranking(chronological(items), "chronological", ranker.name,
                       f"ranker timed out after {timeout_s * 1000:.0f} ms")
    except Exception as exc:  # noqa: BLE001 -- any ranker failure degrades to chronological, reported in the response
        breaker.failure()
        return Ranking(chronological(items), "chronological", ranker.name,
                       f"ranker failed: {type(exc).__name__}: {exc}"[:300])
    breaker.success()
    return Ranking(ordered, "ranked", ranker.name)
