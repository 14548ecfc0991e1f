"""The write path every write endpoint shares: idempotency, produce-and-confirm, the 202 answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from core.clock import now_ms
from core.events import new_event
from core.settings import Settings
from serving import consistency, metrics
from serving.deps import CurrentUser, ProducerDep, RedisDep, SettingsDep
from serving.idempotency import (
    IN_DOUBT,
    DurableClaims,
    IdempotencyStore,
    event_id_for,
    fingerprint,
    redis_key,
)
from serving.ownership import DurableOwnership
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
            self.ids = fresh()
            body = await action()
            headers = consistency.stamp(self.settings, body, self.positions)
            await consistency.record_user(self)
            return JSONResponse(body, status_code=ACCEPTED, headers=headers)
        durable = DurableClaims(self.durable, self.settings.api_idempotency_ttl_s) if self.durable else None
        store = IdempotencyStore(self.redis, self.settings.api_idempotency_ttl_s,
                                 self.settings.api_idempotency_pending_s, durable, (self.user, self.idempotency_key))
        key = redis_key(self.user, self.idempotency_key)
        fp = fingerprint(self.request.method, self.request.url.path, await self.request.body())
        event_id = event_id_for(self.user, self.idempotency_key, fp)
        found = await store.claim(key, fp, lambda: {"event_id": event_id, "occurred_at": now_ms(), **fresh()})
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
        try:  # the user's positions are recorded alongside, in parallel (record_user never raises)
            await asyncio.gather(store.complete(key, fp, ACCEPTED, body), consistency.record_user(self))
        except (RedisError, OSError) as exc:  # the event is in Kafka: never answer 503 for it
            log.warning("%s %s: event %s written but its Idempotency-Key response not recorded "
                        "(a retry will re-produce the same event): %r", self.request.method,
                        self.request.url.path, body.get("event_id"), exc)
        return JSONResponse(body, status_code=ACCEPTED, headers=headers)


async def _write(
    request: Request, user: CurrentUser, producer: ProducerDep, redis: RedisDep, settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN,
        description="retrying with the same key returns the first response and produces no second event",
    )] = None,
) -> Write:
    return Write(request, user, producer, redis, settings, idempotency_key, request.app.state.ownership)


WriteDep = Annotated[Write, Depends(_write)]


def self_reference(field: str, message: str) -> HTTPException:
    """A 422 in the shape of validation errors, for acting on oneself (follow, block, befriend)."""
    return HTTPException(422, [{"loc": ["path", field], "type": "self_reference", "msg": message}])
