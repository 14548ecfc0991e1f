"""Idempotency-Key handling: the first request claims the key; retries replay the stored response.

A claim records, before anything is produced, everything the request's event is made of that is
not in the request itself: the event envelope (``event_id``, ``occurred_at``) and the ids the write
mints (``post_id``, ``comment_id``). A retry that finds the claim pending, once its lease has lapsed
(the first request crashed, or Redis failed after Kafka confirmed), takes the claim over with the
same ids and re-produces the *same* event, which the topologies apply idempotently. A request that
failed releases its lease but keeps the ids, so a retry still produces the same event (an event
whose delivery timed out may yet have been written). The event id itself is derived from
``(user, key, request fingerprint)``, so it is the same even if the claim record is lost.

A write whose delivery is in doubt (sent, not confirmed: :class:`~streams.errors.DeliveryInDoubt`)
keeps its claim marked ``in_doubt`` (``IN_DOUBT`` in its ids): a retry reads the log for the event
before producing it again (:meth:`serving.writes.Write.emit`).

Claims survive a Redis loss: every claim is also written to Cassandra (``stores.requests``, TTL =
the idempotency window): a new claim while the request runs (:meth:`IdempotencyStore.recorded` is
awaited before the event is produced), then its completed or in-doubt state. They are read back only
when a claim is missing from a Redis that is younger than that window (``idem:since``), i.e. lost
since the claim could have been made. A claim restored that way keeps its lease: a request still
pending when Redis was lost may still be producing, so a retry waits for it (409) as it would have
before the loss, and once the lease lapses reads the log for the event before producing it. The
warm path stays one Redis round trip (SET NX and GET ``idem:since``, inside the write's one first call
with its rate limit and ownership reads, ``serving.writes``); the Cassandra write overlaps the request's
own work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from cassandra import DriverException, RequestExecutionException
from cassandra.cluster import NoHostAvailable

from stores import requests as request_store
from stores.requests import K_CLAIMS_SINCE, k_idempotency

PENDING = "pending"
IN_DOUBT = "in_doubt"  # in a claim's ids: {"p": partition or None, "at": ms of the attempt}
log = logging.getLogger(__name__)
CASSANDRA_DOWN = (DriverException, RequestExecutionException, NoHostAvailable, OSError)
EVENT_NS = uuid.UUID("3b0e1d8a-6c55-4f7e-9a0e-2f4b6d1c8e90")

# Replace the claim only if it is still exactly what we read (another retry may have taken it over).
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
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


class DurableClaims:
    """The Cassandra copy of claims (``stores.requests``), through any object with ``query``."""

    def __init__(self, cql: Any, ttl_s: int) -> None:
        self.cql = cql
        self.ttl_s = ttl_s

    async def put(self, user: str, idem_key: str, claim: str) -> None:
        await self.cql.query(request_store.put_statement, user, idem_key, claim, self.ttl_s)

    async def get(self, user: str, idem_key: str) -> str | None:
        rows = await self.cql.query(request_store.get_statement, user, idem_key)
        return rows[0].claim if rows else None


class IdempotencyStore:
    """Claim, complete and release idempotency keys in Redis with a TTL (and durably, with ``durable``)."""

    def __init__(self, redis: aioredis.Redis, ttl_s: int, pending_s: int = 60,
                 durable: DurableClaims | None = None, owner: tuple[str, str] | None = None) -> None:
        self.redis = redis
        self.ttl_ms = ttl_s * 1000
        self.pending_ms = min(pending_s, ttl_s) * 1000
        self.durable = durable if owner is not None else None
        self.owner = owner or ("", "")  # (user, Idempotency-Key) of the durable row
        self._recording: asyncio.Task[None] | None = None  # the durable copy of a new claim
        self.finish: Callable[[aioredis.Redis, str, str], Awaitable[Any]] | None = None  # see complete()

    def _pending(self, fp: str, ids: Mapping[str, Any], lease_ms: int) -> str:
        return json.dumps({"fp": fp, "state": PENDING, "lease": lease_ms, "ids": dict(ids)})

    def new_claim(self, fp: str, mint: Callable[[], dict[str, Any]] = dict) -> tuple[dict[str, Any], str]:
        """The ids ``mint()`` gives and the pending claim that holds them, as :meth:`claim` would SET NX it."""
        ids = mint()
        return ids, self._pending(fp, ids, _now_ms() + self.pending_ms)

    async def claim(self, key: str, fp: str, mint: Callable[[], dict[str, Any]] = dict,
                    first: tuple[dict[str, Any], str, bool, bytes | None, bytes | None] | None = None) -> Outcome:
        """Claim ``key`` for a request with fingerprint ``fp``, or report what holds it.

        A new claim stores ``mint()`` (the event's ids) and is kept for the full TTL; its lease lasts
        ``pending_s``. A pending claim whose lease has lapsed (a crash, a failed request, or Redis
        failing after the event was sent) is taken over with the ids it holds.

        ``first``: the first attempt, already made by the write's one call (``serving.writes``:
        ``stores.requests.WRITE_GATE_LUA``): ``(ids, claim SET NX, created, claim held if not,
        idem:since)``, from :meth:`new_claim`; the same steps as this method's own SET NX and GET.
        """
        for attempt in range(3):  # the holder may expire or be taken over between SET and GET
            held_now: Any = None  # (bytes: the claim the first call found)
            if attempt == 0 and first is not None:
                ids, mine, created, held_now, since = first
            else:
                ids, mine = self.new_claim(fp, mint)
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(key, mine, nx=True, px=self.ttl_ms)
                    pipe.get(K_CLAIMS_SINCE)
                    created, since = await pipe.execute()
            if created:
                if self.durable is None or not await self._maybe_lost(since):
                    self._record(mine)
                    return Outcome("claimed", ids=ids)
                try:
                    raw = await self.durable.get(*self.owner)
                except CASSANDRA_DOWN:  # unknown: give the key back, so a retry consults again
                    await self.redis.eval(_DROP, 1, key, mine)
                    raise
                if raw is None:
                    self._record(mine)
                    return Outcome("claimed", ids=ids)
                log.info("Idempotency-Key %r of %s: claim restored from Cassandra after a Redis loss",
                         self.owner[1], self.owner[0])
                # put it back in place of the fresh claim, if that is still ours; a pending claim keeps
                # its lease (its holder may still be producing) and is taken over, in doubt, once it lapses
                if not await self.redis.eval(_TAKE_OVER, 1, key, mine, raw, self.ttl_ms):
                    continue
            else:
                raw = held_now if held_now is not None else await self.redis.get(key)
                if raw is None:
                    continue
            held = json.loads(raw)
            if held["fp"] != fp:
                return Outcome("mismatch")
            if held.get("state") != PENDING:
                return Outcome("replay", held["status"], held["body"])
            if "lease" not in held or held["lease"] > _now_ms():
                return Outcome("in_progress")  # (a claim without a lease expires by its TTL)
            ids = held["ids"]
            if held["lease"] > 0 and IN_DOUBT not in ids:  # its holder died (or lost Redis) mid-request:
                ids = {**ids, IN_DOUBT: {"p": None, "at": 0}}  # its event may be in the log
            taken = self._pending(fp, ids, _now_ms() + self.pending_ms)
            if await self.redis.eval(_TAKE_OVER, 1, key, raw, taken, self.ttl_ms):
                self._record(taken)
                return Outcome("claimed", ids=ids, resumed=True)
        return Outcome("in_progress")

    async def _maybe_lost(self, since: bytes | None) -> bool:
        """Whether this Redis may have lost a claim made within the window (it is younger than the TTL)."""
        if since is None:  # a new or emptied Redis: from now on it holds every claim
            await self.redis.set(K_CLAIMS_SINCE, _now_ms(), nx=True)
            return True
        return int(since) > _now_ms() - self.ttl_ms

    def _record(self, claim: str) -> None:
        """Start writing a new claim to Cassandra; :meth:`recorded` waits for it before producing."""
        if self.durable is not None:
            self._recording = asyncio.ensure_future(self._durably(claim))

    async def recorded(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until the new claim is in Cassandra: a Redis lost while the event is in
        flight must not leave a retry without it. Best effort: Cassandra down only narrows what
        survives a Redis loss, it does not stop the write."""
        if self._recording is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._recording), timeout_s)
        except TimeoutError:
            log.warning("Idempotency-Key %r of %s: claim not in Cassandra within %.1fs; producing anyway",
                        self.owner[1], self.owner[0], timeout_s)

    async def _durably(self, value: str) -> None:
        """Best effort: a failed durable write only narrows what survives a Redis loss."""
        if self.durable is None:
            return
        try:
            await self.durable.put(*self.owner, value)
        except CASSANDRA_DOWN as exc:
            log.warning("Idempotency-Key %r of %s not recorded in Cassandra: %r", self.owner[1], self.owner[0], exc)

    async def complete(self, key: str, fp: str, status: int, body: Any) -> None:
        """Store the response of a claimed key for replays (in Redis, and in Cassandra for a Redis loss).

        The Redis copy is a SET with the TTL, or :attr:`finish` ``(redis, key, value)`` if set (the write
        folds it into its last call: ``serving.writes.Write``).
        """
        value = self.response(fp, status, body)
        await self.recorded()  # the pending copy first: it must not land after (and over) this one
        await asyncio.gather(self._durably(value), self.finish(self.redis, key, value) if self.finish is not None
                             else self.redis.set(key, value, px=self.ttl_ms))

    @staticmethod
    def response(fp: str, status: int, body: Any) -> str:
        """The stored form of a completed claim."""
        return json.dumps({"fp": fp, "status": status, "body": body})

    async def in_doubt(self, key: str, fp: str, ids: Mapping[str, Any]) -> None:
        """End the lease of a claim whose event may have been written: a retry reads the log first."""
        value = self._pending(fp, ids, 0)
        await self.recorded()
        await asyncio.gather(self._durably(value), self.redis.set(key, value, px=self.ttl_ms))

    async def release(self, key: str, fp: str, ids: Mapping[str, Any]) -> None:
        """End the lease of a claim whose request failed, so a retry runs again (with the same ids)."""
        await self.redis.set(key, self._pending(fp, ids, 0), px=self.ttl_ms)
