"""The API application factory: lifespan-managed clients, versioned routers, error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from confluent_kafka.admin import AdminClient
from fastapi import APIRouter, FastAPI

from core import tracing
from core.settings import Settings, get_settings
from serving import consistency, errors, metrics, realtime, web
from serving.feed import thin
from serving.feed.engines import ReadEngines
from serving.middleware import BodySizeLimit
from serving.ownership import DurableOwnership
from serving.ratelimit import RateLimiter
from serving.requestid import RequestId
from serving.routers import (
    media,
    moderation,
    reads_feed,
    reads_notifications,
    reads_posts,
    reads_users,
    search,
    system,
    trending,
    writes_engagements,
    writes_graph,
    writes_posts,
    writes_users,
)
from serving.settings import settings_of
from serving.tracing import TracingMiddleware
from stores import idnodes
from stores import redis as redis_store
from stores.redis import async_client
from streams.catalog import ALL_TOPICS
from streams.producer import EventProducer

# Routers mounted under /v1; adding a resource is one line here.
V1_ROUTERS: list[APIRouter] = [
    writes_users.router,
    writes_posts.router,
    writes_graph.router,
    writes_engagements.router,
    system.bench_router,
    reads_feed.router,
    reads_posts.router,
    reads_users.router,
    reads_notifications.router,
    realtime.router,
    search.router,
    search.discover_router,
    moderation.router,
    moderation.queue_router,
    media.router,
]
WRITE_TOPICS = ("users.v1", "posts.v1", "graph.v1", "engagements.v1", "moderation.v1")
WRITE_RECORDS = tuple(r for t in ALL_TOPICS if t.name in WRITE_TOPICS for r in t.value_schemas)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Take an id node; create the producer and Redis client; register write schemas up front; close on shutdown.

    Post and comment ids are minted here: without a node of its own (no free lease, Redis down,
    see :mod:`stores.idnodes`) the API does not start.
    """
    settings = app.state.settings = settings_of(app)
    app.state.id_node = await asyncio.to_thread(idnodes.claim, settings)
    # request.timeout.ms stays librdkafka's 30 s: at 5 s (tried), requests in flight to a restarting
    # broker timed out, the idempotent producer reset its state and re-sent them, and the broker
    # appended 42 batches twice (kill-kafka chaos, 2026-12-02)
    producer = EventProducer(settings, config={"delivery.timeout.ms": settings.api_produce_timeout_ms,
                                               "linger.ms": settings.api_linger_ms})
    redis = async_client(settings)
    app.state.producer = producer
    app.state.redis = redis
    app.state.rate_limiter = RateLimiter(redis)
    app.state.ownership = DurableOwnership(settings) if settings.api_durable_ownership else None
    app.state.kafka_admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    # read side: engines (Cassandra connects on first read) and the realtime hub; tests may preset
    # app.state.ranker before start-up
    app.state.reads = ReadEngines(settings, getattr(app.state, "ranker", None))
    app.state.hub = realtime.Hub(redis_store.pubsub_url(settings))
    try:
        # the first encode of a record registers its schema (blocking HTTP): do it before serving
        await asyncio.to_thread(lambda: [producer.serde.schema_id(r) for r in WRITE_RECORDS])
        yield
    finally:
        await consistency.close(app.state)
        await app.state.hub.close()
        await app.state.reads.aclose()
        if getattr(app.state, "opensearch", None) is not None:  # created by the search router on first use
            await app.state.opensearch.close()
            app.state.opensearch = None
        await redis.aclose()
        await asyncio.to_thread(producer.close, settings.api_produce_timeout_ms / 1000 + 1)
        # AdminClient has no close(): drop the app's reference so its librdkafka handle is
        # destroyed now, not whenever the app object goes (it would reconnect to stopped brokers)
        app.state.kafka_admin = None
        await asyncio.to_thread(app.state.id_node.stop)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API; ``settings`` (else :func:`get_settings`) is used by every dependency."""
    app = thin.FeedAPI(title="feedstream API", version="1", lifespan=lifespan, docs_url="/docs",
                  description="Every write is produced to Kafka as an Avro event and answered 202 "
                              "once the broker confirms it.",
                  responses=errors.BODY_TOO_LARGE)  # BodySizeLimit answers any operation
    # kept on app.state, not as a dependency override: any override makes FastAPI re-analyse every
    # dependency on every request (tests may still override get_settings; see settings_of)
    effective = app.state.settings = settings or get_settings()
    effective.signing_secret()  # the API signs and verifies: refuse the placeholder key at build time
    errors.install(app, effective.api_retry_after_s)
    app.include_router(system.router)
    for router in V1_ROUTERS:
        app.include_router(router, prefix="/v1")
    app.include_router(trending.router)  # carries its own /v1/trending prefix
    # the feed's common case before FastAPI's routing and, for a ready page, before the middleware
    thin.install(app, metrics_on=effective.api_metrics)  # (serving/feed/thin.py)
    web.install(app)  # the web app's pages at /, /moderation, /dashboard (serving/web)
    app.add_middleware(BodySizeLimit, max_bytes=effective.api_max_body_bytes)
    if tracing.ENABLED:  # core.tracing.setup() ran (serving.main, or a test): a span per request
        app.add_middleware(TracingMiddleware)
    if effective.api_metrics:
        metrics.install(app)  # GET /metrics; it times everything inside it
    app.add_middleware(RequestId)  # outermost: every log line of a request carries its id
    return app
