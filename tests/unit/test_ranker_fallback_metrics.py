"""A failing ranker's fallback is counted by reason in the API's metrics."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prometheus_client import REGISTRY

from serving.circuit import Breaker
from serving.feed.ranker import rank_or_fallback


class Broken:
    name = "broken"

    def scores(self, reader: str, items: list) -> list[float]:
        raise ValueError("no model")


def _count(reason: str) -> float:
    return REGISTRY.get_sample_value("feedstream_ranker_fallbacks_total", {"reason": reason}) or 0.0


def test_ranker_fallbacks_are_counted_by_reason() -> None:
    items = [{"post_id": "2"}, {"post_id": "1"}]
    breaker = Breaker("ranker", failures=1, reset_s=60)
    errors, opens = _count("error"), _count("open")
    with ThreadPoolExecutor(1) as pool:
        first = rank_or_fallback(Broken(), breaker, pool, "r", items, 1.0)
        second = rank_or_fallback(Broken(), breaker, pool, "r", items, 1.0)
    assert first.algorithm == second.algorithm == "chronological"
    assert _count("error") - errors == 1
    assert _count("open") - opens == 1
