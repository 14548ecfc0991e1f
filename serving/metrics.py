"""API metrics for Prometheus: ``GET /metrics`` and a plain ASGI middleware that feeds it.

Per *route template* (``/v1/users/{user_id}/feed``, never the raw path, so the label set stays
small): requests by status, duration, in-flight requests; rate-limit refusals (429) and idempotent
replays (the ``Idempotent-Replayed`` response header). Beside them: Kafka produce latency and
produced events by record type (``PostCreated``, ``Liked``, ``Followed``: the business counters),
ranker fallbacks by reason, and, read at scrape time (no cost on the hot path), the read path's
circuit-breaker states, the readers holding a live feed connection and the items pushed to them.

The middleware does two ``perf_counter`` calls, a dict lookup and a few counter increments per
request, cheaper than a generic instrumentator. The API runs one process per container
(``serving.main``); if ``PROMETHEUS_MULTIPROC_DIR`` is set, ``/metrics`` aggregates the
processes' files with prometheus-client's multiprocess collector instead.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from serving.middleware import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (.002, .005, .01, .025, .05, .1, .15, .2, .3, .5, 1.0, 2.5, 5.0)
UNMATCHED = "<unmatched>"  # 404s and anything no route claims: one label, not one per path

REQUESTS = Counter("feedstream_http_requests", "HTTP requests by route template and status",
                   ["method", "route", "status"])
DURATION = Histogram("feedstream_http_request_duration_seconds", "HTTP request duration",
                     ["method", "route"], buckets=LATENCY_BUCKETS)
IN_FLIGHT = Gauge("feedstream_http_requests_in_flight", "HTTP requests being served",
                  multiprocess_mode="livesum")
RATE_LIMITED = Counter("feedstream_http_rate_limited", "Requests refused by the rate limiter (429)",
                       ["route"])
REPLAYS = Counter("feedstream_http_idempotent_replays",
                  "Writes answered from a stored Idempotency-Key response", ["route"])
PRODUCE = Histogram("feedstream_produce_seconds", "Kafka produce-and-confirm latency of API writes",
                    ["record"], buckets=LATENCY_BUCKETS)
PRODUCED = Counter("feedstream_events_produced", "Events the API wrote to Kafka, by record type",
                   ["record"])
RANKER_FALLBACKS = Counter("feedstream_ranker_fallbacks",
                           "Feed pages served chronologically because the ranker failed",
                           ["reason"])
BREAKER_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}


def fallback(reason: str) -> None:
    """Count one ranker fallback (``timeout``, ``error`` or ``open``)."""
    RANKER_FALLBACKS.labels(reason).inc()


def route_template(scope: Scope) -> str:
    """The matched route's path template, with the prefixes it was included under (``/v1/...``)."""
    context = (scope.get("fastapi") or {}).get("effective_route_context")  # FastAPI's included routers
    path = getattr(context, "path_format", None)
    if path:
        return path
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED


T0 = "feedstream.t0"  # scope key: when the front door (serving/feed/thin.py) began a request it handed on
_CHILDREN: dict[tuple[str, str], Any] = {}  # (method, route) -> duration child


def observe(method: str, template: str, status: int, took: float, replayed: bool = False) -> None:
    """Record one finished HTTP request (the middleware's bookkeeping, shared with the feed's front door)."""
    key = (method, template)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = DURATION.labels(*key)
    child.observe(took)
    REQUESTS.labels(method, template, str(status)).inc()
    if status == 429:
        RATE_LIMITED.labels(template).inc()
    if replayed:
        REPLAYS.labels(template).inc()


class MetricsMiddleware:
    """Count and time every HTTP request under its route template (a pure ASGI wrapper)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        replayed = False

        async def capture(message: Message) -> None:
            nonlocal status, replayed
            if message["type"] == "http.response.start":
                status = message["status"]
                replayed = any(k == b"idempotent-replayed" for k, _ in message.get("headers", ()))
            await send(message)

        IN_FLIGHT.inc()
        t0 = scope.get(T0) or time.perf_counter()  # timed from the front door if it saw the request first
        try:
            await self.app(scope, receive, capture)
        finally:
            took = time.perf_counter() - t0
            IN_FLIGHT.dec()
            observe(scope["method"], route_template(scope), status, took, replayed)


class BreakerCollector(Collector):
    """Read when Prometheus scrapes, from every live app: breaker states, live readers, pushes."""

    def __init__(self) -> None:
        self.apps: weakref.WeakSet[FastAPI] = weakref.WeakSet()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        family = GaugeMetricFamily("feedstream_circuit_breaker_state",
                                   "Read-path circuit breakers: 0 closed, 1 half-open, 2 open",
                                   labels=["breaker"])
        states: dict[str, int] = {}  # the worst state of each breaker over the apps of this process
        for app in list(self.apps):
            reads = getattr(app.state, "reads", None)
            for name in ("redis", "cassandra", "ranker"):
                breaker = getattr(reads, f"{name}_breaker", None)
                if breaker is not None:
                    state = BREAKER_STATE_VALUES.get(breaker.state, 2)
                    states[name] = max(state, states.get(name, 0))
        for name, state in states.items():
            family.add_metric([name], state)
        yield family
        hubs = [h for h in (getattr(app.state, "hub", None) for app in list(self.apps)) if h is not None]
        readers = GaugeMetricFamily("feedstream_realtime_readers",
                                    "Readers with a live feed connection (active readers) on this process")
        readers.add_metric([], sum(len(h.clients) for h in hubs))
        yield readers
        pushes = CounterMetricFamily("feedstream_realtime_pushes", "Feed items pushed to live connections")
        pushes.add_metric([], sum(h.delivered for h in hubs))
        yield pushes


BREAKERS = BreakerCollector()
REGISTRY.register(BREAKERS)


def exposition() -> tuple[bytes, str]:
    """The metrics text of this process (or of all processes, in multiprocess mode)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of the API process."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def install(app: FastAPI) -> None:
    """Serve ``GET /metrics`` on ``app`` and count its requests (call last in the app factory)."""
    BREAKERS.apps.add(app)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    app.add_middleware(MetricsMiddleware)
