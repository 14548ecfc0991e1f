"""Ranking a feed page: :func:`rank_or_fallback` runs the configured :class:`~models.ranking.Ranker`
(LightGBM or the heuristic) under a timeout and a circuit breaker, and falls back to
chronological order, reported in the response.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from functools import partial
from typing import Any

from models.ranking import Item, Ranker
from serving import metrics
from serving.circuit import Breaker


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


def _not_run(ranker: Ranker, items: Sequence[Item]) -> Ranking:
    """No items (an empty ranked page), or the breaker is open (chronological, said so)."""
    if not items:
        return Ranking([], "ranked", ranker.name)
    metrics.fallback("open")
    return Ranking(chronological(items), "chronological", ranker.name, "ranker circuit open")


def _degraded(ranker: Ranker, breaker: Breaker, items: Sequence[Item], reason: str) -> Ranking:
    """A failed or slow ranker: count it against the breaker and fall back to chronological."""
    breaker.failure()
    metrics.fallback("timeout" if "timed out" in reason else "error")
    return Ranking(chronological(items), "chronological", ranker.name, reason)


def wants_context(ranker: Ranker) -> bool:
    """Whether ``ranker`` scores with author context (models.ranker.LightGBMRanker with a context source)."""
    return bool(getattr(ranker, "wants_context", False))


def rank_or_fallback(ranker: Ranker, breaker: Breaker, pool: Executor, reader: str,
                     items: Sequence[Item], timeout_s: float) -> Ranking:
    """Rank ``items`` within ``timeout_s``; on error, timeout or open breaker, fall back to chronological."""
    if not items or not breaker.allow():
        return _not_run(ranker, items)
    try:
        scores = pool.submit(ranker.scores, reader, list(items)).result(timeout=timeout_s)
        ordered = order_by_scores(items, scores)
    except FutureTimeout:
        return _degraded(ranker, breaker, items, f"ranker timed out after {timeout_s * 1000:.0f} ms")
    except Exception as exc:  # noqa: BLE001 -- any ranker failure degrades to chronological, reported in the response
        return _degraded(ranker, breaker, items, f"ranker failed: {type(exc).__name__}: {exc}"[:300])
    breaker.success()
    return Ranking(ordered, "ranked", ranker.name)


async def rank_or_fallback_async(ranker: Ranker, breaker: Breaker, pool: Executor, reader: str,
                                 items: Sequence[Item], timeout_s: float,
                                 context: Mapping[str, Any] | None = None) -> Ranking:
    """:func:`rank_or_fallback` for the event loop: the ranker runs on ``pool``, awaited with a timeout.
    ``context``: the authors' context already read (for a ranker that :func:`wants_context`)."""
    if not items or not breaker.allow():
        return _not_run(ranker, items)
    score = partial(ranker.scores, context=context) if context is not None else ranker.scores
    fut = asyncio.get_running_loop().run_in_executor(pool, score, reader, list(items))
    try:
        scores = await asyncio.wait_for(fut, timeout_s)
        ordered = order_by_scores(items, scores)
    except TimeoutError:
        return _degraded(ranker, breaker, items, f"ranker timed out after {timeout_s * 1000:.0f} ms")
    except Exception as exc:  # noqa: BLE001 -- any ranker failure degrades to chronological, reported in the response
        return _degraded(ranker, breaker, items, f"ranker failed: {type(exc).__name__}: {exc}"[:300])
    breaker.success()
    return Ranking(ordered, "ranked", ranker.name)
