"""Idempotency-Key handling: the first request claims the key; retries replay the stored response.

A claim records, before anything is produced, everything the request's event is made of that is
not in the request itself: the event envelope (``event_id``, ``occurred_at``) and the ids the write
mints (``post_id``, ``comment_id``). A retry that finds the claim pending, once its lease has lapsed
(the first request crashed, or Redis failed after Kafka confirmed), takes the claim over with the
same ids and re-produces the *same* event, which the topologies apply idempotently. A request that
failed releases its lease but keeps the ids, so a retry still produces the same event (an event
whose delivery timed out may yet have been written). The event id itself is derived from
``(user, key, request fingerprint)``, so it is the same even if the claim record is lost.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from stores.requests import k_idempotency

PENDING = "pending"
EVENT_NS = uuid.UUID("3b0e1d8a-6c55-4f7e-9a0e-2f4b6d1c8e90")

# Replace the claim only if it is still exactly what we read (another retry may have taken it over).
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Return a digest of what the request asks for, so a key reused for another request is caught."""
    return hashlib.sha256(b"%s %s\n%s" % (method.encode(), path.encode(), body)).hexdigest()


def redis_key(user: str, idem_key: str) -> str:
    """Keys are scoped per user: two users may use the same Idempotency-Key."""
    return k_idempotency(user, idem_key)


def event_id_for(user: str, idem_key: str, fp: str) -> str:
    """The event id of ``user``'s request ``fp`` under ``idem_key``: the same for every retry."""
    return str(uuid.uuid5(EVENT_NS, f"{user}\n{idem_key}\n{fp}"))


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Outcome:
    """What a claim found: ``claimed`` (go ahead, with ``ids``), ``replay`` (a stored response), or a conflict.

    ``ids`` are the envelope fields and minted ids the request must use; ``resumed`` is True when
    they come from an earlier attempt whose event may already be in Kafka.
    """

    kind: str  # "claimed" | "replay" | "in_progress" | "mismatch"
    status: int = 0
    body: Any = None
    ids: dict[str, Any] = field(default_factory=dict)
    resumed: bool = False


class IdempotencyStore:
    """Claim, complete and release idempotency keys in Redis with a TTL."""

    def __init__(self, redis: aioredis.Redis, ttl_s: int, pending_s: int = 60) -> None:
        self.redis = redis
        self.ttl_ms = ttl_s * 1000
        self.pending_ms = min(pending_s, ttl_s) * 1000

    def _pending(self, fp: str, ids: Mapping[str, Any], lease_ms: int) -> str:
        return json.dumps({"fp": fp, "state": PENDING, "lease": lease_ms, "ids": dict(ids)})

    async def claim(self, key: str, fp: str, mint: Callable[[], dict[str, Any]] = dict) -> Outcome:
        """Claim ``key`` for a request with fingerprint ``fp``, or report what holds it.

        A new claim stores ``mint()`` (the event's ids) and is kept for the full TTL; its lease lasts
        ``pending_s``. A pending claim whose lease has lapsed (a crash, a failed request, or Redis
        failing after the event was sent) is taken over with the ids it holds.
        """
        for _ in range(3):  # the holder may expire or be taken over between SET and GET
            ids = mint()
            if await self.redis.set(key, self._pending(fp, ids, _now_ms() + self.pending_ms),
                                    nx=True, px=self.ttl_ms):
                return Outcome("claimed", ids=ids)
            raw = await self.redis.get(key)
            if raw is None:
                continue
            held = json.loads(raw)
            if held["fp"] != fp:
                return Outcome("mismatch")
            if held.get("state") != PENDING:
                return Outcome("replay", held["status"], held["body"])
            if "lease" not in held or held["lease"] > _now_ms():
                return Outcome("in_progress")  # (a claim without a lease expires by its TTL)
            taken = self._pending(fp, held["ids"], _now_ms() + self.pending_ms)
            if await self.redis.eval(_TAKE_OVER, 1, key, raw, taken, self.ttl_ms):
                return Outcome("claimed", ids=held["ids"], resumed=True)
        return Outcome("in_progress")

    async def complete(self, key: str, fp: str, status: int, body: Any) -> None:
        """Store the response of a claimed key for replays."""
        await self.redis.set(key, json.dumps({"fp": fp, "status": status, "body": body}), px=self.ttl_ms)

    async def release(self, key: str, fp: str, ids: Mapping[str, Any]) -> None:
        """End the lease of a claim whose request failed, so a retry runs again (with the same ids)."""
        await self.redis.set(key, self._pending(fp, ids, 0), px=self.ttl_ms)
