"""The write path every write endpoint shares: idempotency, produce-and-confirm, the 202 answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from core.events import new_event
from core.settings import Settings
from serving.deps import CurrentUser, ProducerDep, RedisDep, SettingsDep
from serving.idempotency import IdempotencyStore, fingerprint, redis_key
from serving.ownership import DurableOwnership
from streams.producer import EventProducer

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
ACCEPTED = 202


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

    async def emit(self, record: str, **fields: Any) -> str:
        """Produce ``record`` with a fresh envelope, wait for Kafka's confirmation, return its event id."""
        event = new_event(self.user, **fields)
        await self.producer.send_async(record, event)
        return event["event_id"]

    async def once(self, action: Callable[[], Awaitable[dict[str, Any]]]) -> JSONResponse:
        """Run ``action`` at most once per Idempotency-Key and answer 202 with its result."""
        if self.idempotency_key is None:
            return JSONResponse(await action(), status_code=ACCEPTED)
        store = IdempotencyStore(self.redis, self.settings.api_idempotency_ttl_s,
                                 self.settings.api_idempotency_pending_s)
        key = redis_key(self.user, self.idempotency_key)
        fp = fingerprint(self.request.method, self.request.url.path, await self.request.body())
        found = await store.claim(key, fp)
        if found.kind == "replay":
            return JSONResponse(found.body, status_code=found.status, headers={"Idempotent-Replayed": "true"})
        if found.kind == "in_progress":
            raise HTTPException(409, "a request with this Idempotency-Key is still in progress",
                                headers={"Retry-After": "1"})
        if found.kind == "mismatch":
            raise HTTPException(422, [{"loc": ["header", "Idempotency-Key"], "type": "idempotency_key_reused",
                                       "msg": "this Idempotency-Key was used for a different request"}])
        try:
            body = await action()
        except BaseException:
            await store.release(key)
            raise
        await store.complete(key, fp, ACCEPTED, body)
        return JSONResponse(body, status_code=ACCEPTED)


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
