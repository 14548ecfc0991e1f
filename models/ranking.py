"""The feed-ranking contract: the :class:`Ranker` protocol and the engagement-recency heuristic.

The read API ranks a page through a :class:`Ranker`: the LightGBM model (:mod:`models.ranker`) when its
artifact loads, else (or when chosen with ``FEEDSTREAM_RANKER=heuristic``) the
:class:`EngagementRecencyRanker` below, which is also the baseline the model is evaluated against.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from core.ids import id_timestamp_ms

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
