"""Only registered users write, and only to registered users: the caller and graph targets must exist.

"Registered" is the profile view (:func:`serving.feed.users.exists`: Redis cache, Cassandra on a
miss), plus, for read-your-writes, the API's own mark ``registered:{id}`` (:mod:`stores.users`) that
``POST /v1/users`` sets once Kafka confirmed the ``UserRegistered``: the users topology writes the
profile asynchronously, so a user who registers and writes at once is known by the mark, checked
first. When the mark is absent and neither engine can answer: 503 with Retry-After, never a guess.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException

from serving.deps import CurrentUser, RedisDep
from serving.feed.engines import ReadEngines, ReadsDep
from serving.feed.users import exists
from stores.users import k_registered

REGISTER_FIRST = "register first: POST /v1/users"


async def is_registered(redis: aioredis.Redis, reads: ReadEngines, user_id: str) -> bool:
    """The API's registration mark, else the profile view; 503 (from ``reads.run``) if unknown."""
    if await redis.exists(k_registered(user_id)):
        return True
    return await reads.run(exists, reads.readers, user_id)


async def mark_registered(redis: aioredis.Redis, user_id: str, ttl_s: int) -> None:
    """Record that ``user_id``'s registration was accepted (Kafka confirmed it)."""
    await redis.set(k_registered(user_id), b"1", ex=ttl_s)


async def registered_caller(user: CurrentUser, redis: RedisDep, reads: ReadsDep) -> None:
    """403 unless the token's subject registered."""
    if not await is_registered(redis, reads, user):
        raise HTTPException(403, REGISTER_FIRST)


async def require_target(redis: aioredis.Redis, reads: ReadEngines, user_id: str) -> None:
    """404 unless ``user_id`` (whom one follows, befriends or blocks) registered."""
    if not await is_registered(redis, reads, user_id):
        raise HTTPException(404, f"no user {user_id}")


Registered = Depends(registered_caller)
