"""Redis clients (sync for workers and tools, asyncio for the API) from settings."""

from __future__ import annotations

import redis
import redis.asyncio as aioredis

from core.settings import Settings


def client(settings: Settings) -> redis.Redis:
    """A synchronous Redis client with short timeouts."""
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def async_client(settings: Settings) -> aioredis.Redis:
    """An asyncio Redis client with short timeouts, for the API."""
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


SEED_MARKER = "feedstream:seed:demo"  # set once the demo world is loaded (``feedstream seed``)
SEED_LOCK = "feedstream:seed:lock"  # held while a seed runs
