"""Map infrastructure failures to HTTP: Kafka, registry, Redis or Cassandra unavailable -> 503 + Retry-After."""

from __future__ import annotations

import logging

from cassandra import OperationTimedOut, ReadTimeout, Unavailable
from cassandra.cluster import NoHostAvailable
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.ids import IdNodeLost
from stores.media import MediaStoreUnavailable
from streams.errors import DeliveryError, DeliveryInDoubt, RegistryError

log = logging.getLogger(__name__)


class ErrorBody(BaseModel):
    """Body of every non-validation error response."""

    detail: str


def problem(status: int, detail: str, retry_after_s: int | None = None) -> JSONResponse:
    """Return an error response, with Retry-After when the client should come back later."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install(app: FastAPI, retry_after_s: int) -> None:
    """Register the 503 handlers on ``app``."""

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        what = ("event log" if isinstance(exc, (DeliveryError, RegistryError))
                else "object store" if isinstance(exc, MediaStoreUnavailable)
                else "id node lease" if isinstance(exc, IdNodeLost)
                else "redis" if isinstance(exc, (RedisConnectionError, RedisTimeoutError)) else "cassandra")
        log.warning("%s %s: %s unavailable: %s", request.method, request.url.path, what, exc)
        return problem(503, f"{what} unavailable, retry later: {exc}", retry_after_s)

    async def in_doubt(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s %s: outcome unknown: %s", request.method, request.url.path, exc)
        return problem(504, "the event log did not confirm the write in time and it may have been stored: "
                            "the outcome is unknown; retry with the same Idempotency-Key to learn it "
                            f"(no second event is written): {exc}", retry_after_s)

    app.add_exception_handler(DeliveryInDoubt, in_doubt)
    for exc_type in (DeliveryError, RegistryError, IdNodeLost, MediaStoreUnavailable, RedisConnectionError,
                     RedisTimeoutError,
                     NoHostAvailable, OperationTimedOut, ReadTimeout, Unavailable):
        app.add_exception_handler(exc_type, unavailable)


def responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI ``responses=`` entries for the error codes an operation can return."""
    text = {400: "the body is not parseable JSON", 401: "missing or invalid bearer token", 403: "acting as another user, or not the author",
            404: "no such post or comment", 409: "a request with this Idempotency-Key is in progress",
            413: "request body too large", 429: "rate limit exceeded (see Retry-After)",
            503: "Kafka or Redis unavailable, nothing written (see Retry-After)",
            504: "outcome unknown: Kafka did not confirm in time; retry with the same Idempotency-Key"}
    out: dict[int | str, dict] = {}
    for c in (*codes, 504) if 503 in codes else codes:  # a write that may reach Kafka is 504, never 503
        out[c] = {"model": ErrorBody, "description": text[c]}
        if c in (409, 429, 503, 504):
            out[c]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


READ_TEXT = {400: "malformed cursor, or a cursor of another list", 401: "missing or invalid bearer token",
             403: "not visible to the caller", 404: "no such user or post",
             503: "no engine can answer the read, retry later (see Retry-After)"}
BODY_TOO_LARGE = {413: {"model": ErrorBody, "description": "request body too large (any operation)"}}


def read_responses(*codes: int, **why: str) -> dict[int | str, dict]:
    """OpenAPI ``responses=`` for a read: ``codes`` with :data:`READ_TEXT`, or ``why["e404"]``-style
    descriptions per operation; 503 documents its Retry-After header."""
    out: dict[int | str, dict] = {}
    for c in codes:
        out[c] = {"model": ErrorBody, "description": why.get(f"e{c}", READ_TEXT[c])}
        if c == 503:
            out[c]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out


#: OpenAPI ``responses=`` of every rate-limited read router (per-user and per-IP read buckets).
READ_LIMITED: dict[int | str, dict] = {429: {
    "model": ErrorBody, "description": "over the read rate limit (per user or per IP); retry later",
    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}}}
