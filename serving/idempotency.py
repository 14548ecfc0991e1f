"""Idempotency-Key handling: the first request claims the key; retries replay the stored response."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from stores.requests import k_idempotency

PENDING = "pending"


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Return a digest of what the request asks for, so a key reused for another request is caught."""
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


def redis_key(user: str, idem_key: str) -> str:
    """Keys are scoped per user: two users may use the same Idempotency-Key."""
    return k_idempotency(user, idem_key)


@dataclass(frozen=True)
class Outcome:
    """What a claim found: ``claimed`` (go ahead), ``replay`` (a stored response), or a conflict."""

    kind: str  # "claimed" | "replay" | "in_progress" | "mismatch"
    status: int = 0
    body: Any = None


class IdempotencyStore:
    """Claim, complete and release idempotency keys in Redis with a TTL."""

    def __init__(self, redis: aioredis.Redis, ttl_s: int, pending_s: int = 60) -> None:
        self.redis = redis
        self.ttl_ms = ttl_s * 1000
        self.pending_ms = min(pending_s, ttl_s) * 1000

    async def claim(self, key: str, fp: str) -> Outcome:
        """Claim ``key`` for a request with fingerprint ``fp``, or report what holds it.

        A claim expires after ``pending_s`` if its request never completes or releases it (a crash,
        or Redis failing after the event was sent), so the key is not blocked for the full TTL.
        """
        pending = json.dumps({"fp": fp, "state": PENDING})
        for _ in range(3):  # the holder may expire or be released between SET and GET
            if await self.redis.set(key, pending, nx=True, px=self.pending_ms):
                return Outcome("claimed")
            raw = await self.redis.get(key)
            if raw is None:
                continue
            held = json.loads(raw)
            if held["fp"] != fp:
                return Outcome("mismatch")
            if held.get("state") == PENDING:
                return Outcome("in_progress")
            return Outcome("replay", held["status"], held["body"])
        return Outcome("in_progress")

    async def complete(self, key: str, fp: str, status: int, body: Any) -> None:
        """Store the response of a claimed key for replays."""
        await self.redis.set(key, json.dumps({"fp": fp, "status": status, "body": body}), px=self.ttl_ms)

    async def release(self, key: str) -> None:
        """Drop a claim whose request failed, so a retry runs again."""
        await self.redis.delete(key)
