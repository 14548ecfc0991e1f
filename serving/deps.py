"""FastAPI dependencies as ``Annotated`` aliases: clients from the app's lifespan, settings, the user."""

from __future__ import annotations

from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request

from core.settings import Settings
from serving.auth import current_user
from serving.ratelimit import Bucket, RateLimiter, retry_after_s
from serving.settings import app_settings
from stores.requests import k_rate_ip, k_rate_user, k_read_rate_ip, k_read_rate_user
from streams.producer import EventProducer


async def get_producer(request: Request) -> EventProducer:
    """The app's Kafka producer, created by the lifespan."""
    return request.app.state.producer


async def get_redis(request: Request) -> aioredis.Redis:
    """The app's asyncio Redis client, created by the lifespan."""
    return request.app.state.redis


ProducerDep = Annotated[EventProducer, Depends(get_producer)]
RedisDep = Annotated[aioredis.Redis, Depends(get_redis)]
SettingsDep = Annotated[Settings, Depends(app_settings)]
CurrentUser = Annotated[str, Depends(current_user)]


def client_ip(request: Request) -> str:
    """The peer address (uvicorn resolves X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"


def too_many(wait_ms: int) -> HTTPException:
    """The 429 of an empty bucket, with Retry-After."""
    return HTTPException(429, f"rate limit exceeded; retry in {wait_ms} ms",
                         headers={"Retry-After": str(retry_after_s(wait_ms))})


async def _take(request: Request, buckets: list[Bucket]) -> None:
    """Take one token from every bucket; 429 with Retry-After when one is empty."""
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = await limiter.wait_ms(buckets)
    if wait:
        raise too_many(wait)


def write_buckets(settings: Settings, user: str, ip: str) -> list[Bucket]:
    """A write's buckets: the user's and the client IP's write buckets; none when rate limiting is off."""
    if not settings.api_rate_limit_enabled:
        return []
    return [Bucket(k_rate_user(user), settings.api_rate_user_per_s, settings.api_rate_user_burst),
            Bucket(k_rate_ip(ip), settings.api_rate_ip_per_s, settings.api_rate_ip_burst)]


async def rate_limit(request: Request, user: CurrentUser, settings: SettingsDep) -> None:
    """A write: one token from the user's and the client IP's write buckets; 429 with Retry-After when empty.
    (The post, engagement and graph routers take them inside the write's first call instead:
    :func:`serving.writes.write_gate`.)"""
    buckets = write_buckets(settings, user, client_ip(request))
    if buckets:
        await _take(request, buckets)


def read_buckets(settings: Settings, user: str, ip: str) -> list[Bucket]:
    """A read's buckets: the user's and the client IP's read buckets (their own, larger ones); none
    when rate limiting is off."""
    if not settings.api_rate_limit_enabled:
        return []
    return [Bucket(k_read_rate_user(user), settings.api_read_rate_user_per_s, settings.api_read_rate_user_burst),
            Bucket(k_read_rate_ip(ip), settings.api_read_rate_ip_per_s, settings.api_read_rate_ip_burst)]


async def read_rate_limit(request: Request, user: CurrentUser, settings: SettingsDep) -> None:
    """A read: one token from each of :func:`read_buckets` (the feed's thin route takes them inside
    its page script instead, :mod:`serving.feed.thin`)."""
    buckets = read_buckets(settings, user, client_ip(request))
    if buckets:
        await _take(request, buckets)


RateLimited = Depends(rate_limit)
ReadRateLimited = Depends(read_rate_limit)
