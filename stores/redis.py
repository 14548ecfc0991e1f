"""Redis clients (sync for workers and tools, asyncio for the API) from settings."""

from __future__ import annotations

import uuid

import redis
import redis.asyncio as aioredis

from core.settings import Settings


def client(settings: Settings) -> redis.Redis:
    """A synchronous Redis client with short timeouts."""
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def async_client(settings: Settings) -> aioredis.Redis:
    """An asyncio Redis client with short timeouts, for the API."""
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


EPOCH = "redis:epoch"  # a fresh UUID each time the platform finds this Redis empty (no persistence)


def ensure_epoch(r: redis.Redis) -> tuple[str, bool]:
    """This Redis's epoch, and whether this call created it (the Redis was new or lost its data).

    Hot views that cannot be trusted after a loss carry their own per-key markers (``g:ok:{u}``,
    ``tlok:{r}``, missing ``ap:{a}`` and ``cnt:{post}``) and are reloaded from Cassandra lazily;
    the epoch tells operators (and the workers' logs) when that happened.
    """
    fresh = uuid.uuid4().hex
    if r.set(EPOCH, fresh, nx=True):
        return fresh, True
    cur = r.get(EPOCH)
    return (cur.decode() if isinstance(cur, bytes) else str(cur)), False


SEED_MARKER = "feedstream:seed:demo"  # set once the demo world is loaded (``feedstream seed``)
SEED_LOCK = "feedstream:seed:lock"  # held while a seed runs
