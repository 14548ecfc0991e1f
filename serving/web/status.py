"""``GET /v1/web/status``: what the pipeline dashboard draws, from the platform's own metrics.

Each topology worker publishes its ``/metrics`` address as a Prometheus file_sd target under
``<state_dir>/monitoring/targets/topology-<name>.json`` (the same files the local Prometheus reads);
this endpoint scrapes them once per call and sums, per topology: events applied (a counter: the page
turns successive samples into throughput), records dead-lettered, consumer lag, liveness and the
write→visible histogram (p50/p95). Trending windows come from the trending store.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from serving.deps import CurrentUser, ReadRateLimited, RedisDep
from serving.errors import READ_LIMITED, read_responses
from serving.settings import settings_of
from stores.trending import current_trending_async

router = APIRouter(prefix="/web", tags=["web"], dependencies=[ReadRateLimited],
                   responses={**READ_LIMITED, **read_responses(401, 503, e503="Redis unavailable, retry later (see Retry-After)")})
PROCESSED = "feedstream_worker_events_processed_total"
DEAD = "feedstream_worker_events_dead_lettered_total"
LAG = "feedstream_consumer_lag"
LIVE = "feedstream_worker_live"
FRESH = "feedstream_write_to_visible_seconds"


def targets(state_dir: Path) -> dict[str, str]:
    """``{topology: "host:port"}`` of every worker that published a scrape target."""
    out: dict[str, str] = {}
    for path in sorted((Path(state_dir) / "monitoring" / "targets").glob("topology-*.json")):
        try:
            out[path.stem.removeprefix("topology-")] = json.loads(path.read_text())[0]["targets"][0]
        except (OSError, ValueError, LookupError):
            continue
    return out


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the first histogram bucket holding the ``q`` quantile (None: no samples).

    ``buckets`` are cumulative ``(le, count)`` pairs, ``+Inf`` last, as Prometheus exposes them.
    """
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    for le, count in buckets:
        if count >= q * total:
            return le
    return buckets[-1][0]


def summarize(text: str) -> dict[str, Any]:
    """One worker's exposition text as the dashboard's numbers."""
    processed = dead = lag = 0.0
    live: float | None = None
    buckets: dict[float, float] = {}
    fresh_sum = fresh_count = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == PROCESSED:
                processed += s.value
            elif s.name == DEAD:
                dead += s.value
            elif s.name == LAG:
                lag += s.value
            elif s.name == LIVE:
                live = s.value
            elif s.name == FRESH + "_bucket":
                le = float(s.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + s.value
            elif s.name == FRESH + "_sum":
                fresh_sum += s.value
            elif s.name == FRESH + "_count":
                fresh_count += s.value
    pairs = list(buckets.items())
    return {"processed": int(processed), "dead_letters": int(dead), "lag": int(lag),
            "live": None if live is None else live >= 1,
            "freshness": {"count": int(fresh_count), "mean_s": fresh_sum / fresh_count if fresh_count else None,
                          "p50_s": quantile(pairs, 0.5), "p95_s": quantile(pairs, 0.95)}}


async def _scrape(client: httpx.AsyncClient, name: str, target: str) -> dict[str, Any]:
    try:
        res = await client.get(f"http://{target}/metrics")
        res.raise_for_status()
    except httpx.HTTPError as exc:
        return {"name": name, "state": "down", "error": type(exc).__name__}
    return {"name": name, "state": "up", **summarize(res.text)}


def window_labels(settings: Settings) -> list[str]:
    """Window size labels of the trending job (``1h/1m/…,1m/10s/…`` -> ``["1h", "1m"]``)."""
    return [w.split("/")[0].strip() for w in settings.trending_windows.split(",") if w.strip()]


@router.get("/status", summary="Pipeline status for the dashboard: per-topology counters, lag, dead letters, "
                               "write→visible freshness, trending windows")
async def pipeline_status(request: Request, user: CurrentUser, redis: RedisDep) -> dict[str, Any]:
    settings = settings_of(request.app)
    found = targets(settings.state_dir)
    async with httpx.AsyncClient(timeout=1.5) as client:
        rows = await asyncio.gather(*(_scrape(client, n, t) for n, t in found.items()))
    trending = []
    for label in window_labels(settings):
        cur = await current_trending_async(redis, f"hashtags:{label}", 8)
        trending.append({"window": label, **cur})
    return {"at_ms": int(time.time() * 1000), "topologies": list(rows), "trending": trending}
