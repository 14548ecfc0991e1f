"""The write path every write endpoint shares: idempotency, produce-and-confirm, the 202 answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from redis.exceptions import RedisError

from core.clock import now_ms
from core.events import new_event
from core.settings import Settings
from serving import consistency, metrics
from serving.deps import (
    CurrentUser,
    ProducerDep,
    RedisDep,
    SettingsDep,
    client_ip,
    too_many,
    write_buckets,
)
from serving.feed.engines import ReadEngines, ReadsDep
from serving.idempotency import (
    IN_DOUBT,
    DurableClaims,
    IdempotencyStore,
    event_id_for,
    fingerprint,
    redis_key,
)
from serving.ownership import DurableOwnership
from serving.ratelimit import Bucket
from serving.registration import REGISTER_FIRST, is_registered
from stores import progress
from stores.redis import is_cluster
from stores.requests import K_CLAIMS_SINCE, WRITE_DONE_LUA, WRITE_GATE_LUA
from stores.users import k_registered, k_user
from streams.errors import DeliveryError, DeliveryInDoubt
from streams.producer import EventProducer

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
ACCEPTED = 202
ENVELOPE = ("event_id", "occurred_at")
log = logging.getLogger(__name__)
LOOKUP_THREADS = 4  # concurrent log look-ups of in-doubt retries (each a short-lived consumer)
LOOKUP_SLACK_S = 2.0  # a look-up's own bound plus this, then the retry is answered "in doubt"
_lookup_pool: ThreadPoolExecutor | None = None


def lookup_pool() -> ThreadPoolExecutor:
    """The threads that read the log for in-doubt retries (not the default pool, shared with everything)."""
    global _lookup_pool
    if _lookup_pool is None:
        _lookup_pool = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="log-lookup")
    return _lookup_pool


GATE_STATE = "write_gate"  # request.state attribute of a write's deferred checks


@dataclass
class Gate:
    """A write's rate limit and caller-registration check, deferred by :func:`write_gate` into the
    write's first Redis call (:meth:`Write.once`), so the common path makes one round trip before its
    produce. A request that ends before that call (a validation error, a self-reference, an unavailable
    engine) settles them in :class:`WriteRoute` as the separate dependencies did: 429 first, then 403,
    then the request's own error.
    """

    request: Request
    user: str
    redis: aioredis.Redis
    reads: ReadEngines
    buckets: list[Bucket]
    pending: bool = True

    async def settle(self) -> None:
        """The separate steps, if the write's first call did not make them: take, then registration."""
        if not self.pending:
            return
        self.pending = False
        if self.buckets:
            wait = await self.request.app.state.rate_limiter.wait_ms(self.buckets)
            if wait:
                raise too_many(wait)
        if not await is_registered(self.redis, self.reads, self.user):
            raise HTTPException(403, REGISTER_FIRST)


async def write_gate(request: Request, user: CurrentUser, settings: SettingsDep, redis: RedisDep,
                     reads: ReadsDep) -> None:
    """The write routers' dependency in place of ``RateLimited`` and ``Registered``: one token from the
    user's and the client IP's write buckets (429 with Retry-After when empty), then 403 unless the
    caller registered, both made inside the write's first Redis call (:class:`Gate`). On a Redis Cluster
    (the one script would span slots) they run here, as separate calls."""
    gate = Gate(request, user, redis, reads, write_buckets(settings, user, client_ip(request)))
    if is_cluster(redis):
        await gate.settle()
    setattr(request.state, GATE_STATE, gate)


class WriteRoute(APIRoute):
    """A write route: a request that did not reach its write's first call still takes its rate-limit
    token and has its caller's registration checked (:meth:`Gate.settle`), before its own error."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def gated(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception:
                gate = getattr(request.state, GATE_STATE, None)
                if gate is not None:
                    await gate.settle()
                raise
            gate = getattr(request.state, GATE_STATE, None)
            if gate is not None and gate.pending:  # (every write route makes the first call: not reached)
                await gate.settle()
            return response

        return gated


Gated = Depends(write_gate)


@dataclass
class Write:
    """One write request: who, the clients, and its Idempotency-Key if any."""

    request: Request
    user: str
    producer: EventProducer
    redis: aioredis.Redis
    settings: Settings
    idempotency_key: str | None
    durable: DurableOwnership | None = None
    ids: dict[str, Any] = field(default_factory=dict)
    sent_at: int | None = None  # when this request produced its event (ms), if it did
    positions: list[tuple[str, int, int]] = field(default_factory=list)  # where emitted events landed
    claims: IdempotencyStore | None = None  # the Idempotency-Key claim this request holds, if any
    gate: Gate | None = None  # the rate limit and registration check the first call makes, if deferred
    prefetched: dict[str, bytes | None] = field(default_factory=dict)  # values the first call read (GET)
    _prefetch: list[str] = field(default_factory=list)  # keys the route asked the first call to read
    _targets: list[str] = field(default_factory=list)  # users whose registration the first call checks
    _known: set[str] = field(default_factory=set)  # users the first call found registered
    _records: dict[str, str] = field(default_factory=dict)  # SETs the last call makes (after the produce)

    def prefetch(self, *keys: str) -> None:
        """Read ``keys`` (GET) in the write's first call; the route finds them in :attr:`prefetched`."""
        self._prefetch.extend(k for k in keys if k not in self._prefetch)

    def check_registered(self, user_id: str) -> None:
        """Check in the write's first call whether ``user_id`` is registered (:meth:`known_registered`)."""
        if user_id not in self._targets:
            self._targets.append(user_id)

    def known_registered(self, user_id: str) -> bool:
        """Whether the first call found ``user_id``'s registration mark or cached profile (False: ask the
        profile view, :func:`serving.registration.require_target`)."""
        return user_id in self._known

    def record_after(self, records: Mapping[str, str]) -> None:
        """SET ``records`` in the write's last call, once Kafka confirmed its events (e.g. a new post's owner)."""
        self._records.update(records)

    def _scripts(self) -> WriteScripts:
        """The app's write scripts on this request's Redis client (registered on first use)."""
        state = self.request.app.state
        scripts = getattr(state, "write_scripts", None)
        if scripts is None or scripts.redis is not self.redis:
            scripts = state.write_scripts = WriteScripts(self.redis)
        return scripts

    async def _first_call(self, claim: tuple[str, str] | None) -> tuple[Any, Any]:
        """The write's first Redis call (``stores.requests.WRITE_GATE_LUA``): the deferred rate limit
        (429) and caller registration (403), the Idempotency-Key ``claim`` ``(key, SET NX value)``, the
        targets' registration and the prefetched keys. Returns ``(claim, idem:since)`` as the script
        does: claim 1 (created), the held claim, or 0 (not made here: claim separately)."""
        gate = self.gate if self.gate is not None and self.gate.pending else None
        if is_cluster(self.redis):  # keys in several slots: the separate steps (the gate settled already)
            return 0, None
        buckets = gate.buckets if gate is not None else []
        users = [self.user] if gate is not None else []
        users += [u for u in self._targets if u not in users]
        if not buckets and not users and claim is None and not self._prefetch:
            return 0, None
        if gate is not None:
            gate.pending = False
        keys = [b.key for b in buckets] + [k for u in users for k in (k_registered(u), k_user(u))]
        if claim is not None:
            keys += [claim[0], K_CLAIMS_SINCE]
        keys += self._prefetch
        args: list[Any] = [len(buckets), len(users), "1" if gate is not None else "0", "1" if claim else "0",
                           claim[1] if claim else "", self.settings.api_idempotency_ttl_s * 1000]
        for b in buckets:
            args += [b.rate_per_s, b.burst]
        out = await self._scripts().gate(keys=keys, args=args)
        if out[0]:
            raise too_many(int(out[0]))
        known = out[1].decode() if isinstance(out[1], bytes) else str(out[1])
        self._known.update(u for u, flag in zip(users, known) if flag == "1")
        self.prefetched.update(zip(self._prefetch, out[4:]))
        if gate is not None and self.user not in self._known:  # not marked, not cached: the profile view
            if not await is_registered(self.redis, gate.reads, self.user):
                raise HTTPException(403, REGISTER_FIRST)
            return 0, None  # the script made no claim for an unknown caller
        return out[2], out[3]

    async def _last_call(self, response: tuple[str, str] | None, redis: aioredis.Redis | None = None) -> None:
        """The write's last Redis call (``stores.requests.WRITE_DONE_LUA``), after Kafka confirmed: the
        Idempotency-Key's stored ``response`` ``(key, value)``, the writer's newest positions (own reads
        wait on them, :func:`serving.consistency.record_user`) and :meth:`record_after`'s SETs, on ``redis``
        (default: the request's client)."""
        redis = redis if redis is not None else self.redis
        marks = progress.highest(self.positions) if self.settings.consistency_own_reads else {}
        if response is None and not marks and not self._records:
            return
        if is_cluster(redis):  # keys in several slots: the separate steps
            await asyncio.gather(
                *([redis.set(response[0], response[1], px=self.settings.api_idempotency_ttl_s * 1000)]
                  if response else []),
                *([progress.record_user(redis, self.user, self.positions, self.settings.consistency_user_ttl_s)]
                  if marks else []),
                *(redis.set(k, v) for k, v in self._records.items()))
            return
        keys = [response[0]] if response else []
        if marks:
            keys.append(progress.user_key(self.user))
        keys += list(self._records)
        args: list[Any] = ["1" if response else "0", response[1] if response else "", len(marks),
                           self.settings.consistency_user_ttl_s * 1000, self.settings.api_idempotency_ttl_s * 1000]
        for (topic, part), off in sorted(marks.items()):
            args += [progress.field(topic, part), off]
        args += list(self._records.values())
        await self._scripts().done(keys=keys, args=args, client=redis)

    async def emit(self, record: str, **fields: Any) -> str:
        """Produce ``record``, wait for Kafka's confirmation, return its event id.

        The envelope is fresh, or under an Idempotency-Key the one recorded in the claim, so every
        retry of the request produces the same event.
        """
        event = new_event(self.user, **fields)
        event.update({k: self.ids[k] for k in ENVELOPE if k in self.ids})
        found = await self._earlier_send_here(record, event) if self.idempotency_key is not None else None
        if found is None and IN_DOUBT in self.ids:
            found = await self._already_written(record, event)
        if found is not None:
            self.positions.append((self.producer.topic_of(record, event), *found))
            return event["event_id"]
        if self.claims is not None:  # the claim is durable before its event can be in the log
            await self.claims.recorded()
        self.sent_at = now_ms()
        with metrics.PRODUCE.labels(record).time():
            report = await self.producer.send_async(record, event)
        metrics.PRODUCED.labels(record).inc()
        self.positions.append((report.topic, report.partition, report.offset))
        return event["event_id"]

    async def _earlier_send_here(self, record: str, event: dict[str, Any]) -> tuple[int, int] | None:
        """Where an earlier attempt of this event, still unsettled in this API's producer, landed.

        Waits (bounded) for its delivery report: while librdkafka holds the record it may still
        land, and the log cannot show it yet, so neither a look-up nor a new produce is safe.
        None if there is no such attempt or it surely failed (or settled in doubt: then the claim's
        ``in_doubt`` starts now, and the log is read after the settle time); DeliveryInDoubt if it is
        still open.
        """
        earlier = self.producer.outstanding(event["event_id"])
        if earlier is None:
            return None
        try:
            report = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(earlier)),
                                            self.settings.api_produce_timeout_ms / 1000)
        except TimeoutError:
            raise DeliveryInDoubt(f"{record}: an earlier attempt of this event is still being delivered",
                                  None) from None
        except DeliveryInDoubt as exc:  # settled, outcome unknown: a request may still be at the broker, so
            self.ids[IN_DOUBT] = {"p": exc.partition, "at": now_ms()}  # the log is read once that has passed
            return None
        except DeliveryError:
            return None  # surely not written: produce it
        log.info("%s %s: an earlier attempt of event %s here was written at %s; not producing it again",
                 self.request.method, self.request.url.path, event["event_id"], (report.partition, report.offset))
        return report.partition, report.offset

    async def _already_written(self, record: str, event: dict[str, Any]) -> tuple[int, int] | None:
        """Where (partition, offset) an earlier attempt whose delivery was in doubt put ``event``, if it did.

        Unknown (the attempt is too recent to have settled, or the log can't be read) raises
        DeliveryInDoubt again: producing now could add a second copy.
        """
        doubt, wait_ms = self.ids[IN_DOUBT], 2 * self.settings.api_produce_timeout_ms
        if now_ms() - doubt["at"] < wait_ms:
            raise DeliveryInDoubt(f"{record}: the earlier attempt's outcome is not settled yet", doubt["p"])
        loop = asyncio.get_running_loop()
        try:  # a pool of its own, bounded: queued behind other work, a look-up would outlast the client
            found = await asyncio.wait_for(
                loop.run_in_executor(lookup_pool(), self.producer.find, record, event, doubt["p"],
                                     event["occurred_at"] - 5000, wait_ms / 1000),
                wait_ms / 1000 + LOOKUP_SLACK_S)
        except TimeoutError:
            raise DeliveryInDoubt(f"{record}: the log could not be read in time to learn the earlier outcome",
                                  doubt["p"]) from None
        if found is not None:
            log.info("%s %s: event %s was written at %s; not producing it again", self.request.method,
                     self.request.url.path, event["event_id"], found)
        return found

    async def once(self, action: Callable[[], Awaitable[dict[str, Any]]],
                   mint: Mapping[str, Callable[[], int]] | None = None) -> JSONResponse:
        """Run ``action`` at most once per Idempotency-Key and answer 202 with its result.

        ``mint`` names the ids the write creates (e.g. ``{"post_id": new_post_id}``); ``action`` reads
        them from ``self.ids``. Under an Idempotency-Key they are recorded in the claim before anything
        is produced, so a retry after a crash reuses them (and the event id) instead of minting anew.
        """
        mint = mint or {}

        def fresh() -> dict[str, Any]:
            return {name: new() for name, new in mint.items()}

        if self.idempotency_key is None:
            await self._first_call(None)
            self.ids = fresh()
            body = await action()
            headers = consistency.stamp(self.settings, body, self.positions)
            await self._finish(None)
            return JSONResponse(body, status_code=ACCEPTED, headers=headers)
        durable = DurableClaims(self.durable, self.settings.api_idempotency_ttl_s) if self.durable else None
        store = IdempotencyStore(self.redis, self.settings.api_idempotency_ttl_s,
                                 self.settings.api_idempotency_pending_s, durable, (self.user, self.idempotency_key))
        key = redis_key(self.user, self.idempotency_key)
        fp = fingerprint(self.request.method, self.request.url.path, await self.request.body())
        event_id = event_id_for(self.user, self.idempotency_key, fp)

        def mint_all() -> dict[str, Any]:
            return {"event_id": event_id, "occurred_at": now_ms(), **fresh()}

        ids, mine = store.new_claim(fp, mint_all)
        made, since = await self._first_call((key, mine))
        first = (ids, mine, made == 1, made if isinstance(made, bytes) else None, since) if made else None
        found = await store.claim(key, fp, mint_all, first)
        if found.kind == "replay":
            return JSONResponse(found.body, status_code=found.status,
                                headers={"Idempotent-Replayed": "true", **consistency.replay_headers(found.body)})
        if found.kind == "in_progress":
            raise HTTPException(409, "a request with this Idempotency-Key is still in progress",
                                headers={"Retry-After": "1"})
        if found.kind == "mismatch":
            raise HTTPException(422, [{"loc": ["header", "Idempotency-Key"], "type": "idempotency_key_reused",
                                       "msg": "this Idempotency-Key was used for a different request"}])
        self.ids = dict(found.ids)
        self.claims = store
        if found.resumed:
            log.info("%s %s: resuming Idempotency-Key %r of %s with event %s", self.request.method,
                     self.request.url.path, self.idempotency_key, self.user, self.ids.get("event_id"))
        try:
            body = await action()
        except DeliveryInDoubt as exc:  # may be in the log: keep the ids, a retry reads the log first
            if self.sent_at is not None:  # (not if it only failed to learn an earlier attempt's outcome)
                self.ids[IN_DOUBT] = {"p": exc.partition, "at": self.sent_at}
            try:
                await store.in_doubt(key, fp, self.ids)
            except (RedisError, OSError) as rexc:  # the lease lapses by itself, with the ids (not the doubt)
                log.warning("could not mark Idempotency-Key %r of %s in doubt: %r", self.idempotency_key,
                            self.user, rexc)
            raise
        except BaseException:
            try:
                await store.release(key, fp, self.ids)
            except (RedisError, OSError) as exc:  # the lease lapses by itself; report the request's own error
                log.warning("could not release Idempotency-Key %r of %s: %r", self.idempotency_key, self.user, exc)
            raise
        headers = consistency.stamp(self.settings, body, self.positions)
        # the response, the user's positions and the route's records in one call (and Cassandra's copy)
        store.finish = lambda redis, k, value: self._last_call((k, value), redis)
        try:
            await store.complete(key, fp, ACCEPTED, body)
        except Exception as exc:  # noqa: BLE001 - the event is in Kafka: never answer 503 (or 500) for it
            log.warning("%s %s: event %s written but its Idempotency-Key response not recorded "
                        "(a retry will re-produce the same event): %r", self.request.method,
                        self.request.url.path, body.get("event_id"), exc)
            await self._finish(None)  # the positions and records, as when they were separate calls
        return JSONResponse(body, status_code=ACCEPTED, headers=headers)

    async def _finish(self, response: tuple[str, str] | None) -> None:
        """:meth:`_last_call` for a write without a claim; never raises (the event is in Kafka)."""
        try:
            await self._last_call(response)
        except Exception as exc:  # noqa: BLE001 - the write stands; own reads may be stale, records lost
            log.warning("%s %s: event written but the last call failed (own-read positions, records): %r",
                        self.request.method, self.request.url.path, exc)


async def _write(
    request: Request, user: CurrentUser, producer: ProducerDep, redis: RedisDep, settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
        description="retrying with the same key returns the first response and produces no second event",
    )] = None,
) -> Write:
    return Write(request, user, producer, redis, settings, idempotency_key, request.app.state.ownership,
                 gate=getattr(request.state, GATE_STATE, None))


class WriteScripts:
    """The write path's two scripts (:data:`stores.requests.WRITE_GATE_LUA`, ``WRITE_DONE_LUA``), registered once."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.gate = redis.register_script(WRITE_GATE_LUA)
        self.done = redis.register_script(WRITE_DONE_LUA)


WriteDep = Annotated[Write, Depends(_write)]


def self_reference(field: str, message: str) -> HTTPException:
    """A 422 in the shape of validation errors, for acting on oneself (follow, block, befriend)."""
    return HTTPException(422, [{"loc": ["path", field], "type": "self_reference", "msg": message}])
