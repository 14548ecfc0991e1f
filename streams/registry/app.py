"""FastAPI application factory for the schema registry."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streams.registry.compat import DEFAULT_LEVEL, Level
from streams.registry.errors import RegistryServiceError
from streams.registry.routes import (
    SCHEMA_REGISTRY_JSON,
    RegistryJSONResponse,
    compatibility,
    config,
    root,
    schemas,
    subjects,
)
from streams.registry.service import Registry
from streams.registry.storage import Storage

log = logging.getLogger(__name__)


def create_app(storage: Storage, default_level: Level = DEFAULT_LEVEL) -> FastAPI:
    """Build the registry app over ``storage``; replays the log before returning."""
    registry = Registry(storage, default_level)
    registry.start()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        storage.close()

    app = FastAPI(
        title="feedstream schema registry",
        summary="Confluent Schema Registry REST API (AVRO) over a compacted Kafka topic",
        default_response_class=RegistryJSONResponse,
        lifespan=lifespan,
    )
    app.state.registry = registry
    for router in (schemas, subjects, config, compatibility, root):
        app.include_router(router)
    app.add_exception_handler(RegistryServiceError, _registry_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(NegotiateJSON)
    return app


def _error(status: int, code: int, message: str) -> RegistryJSONResponse:
    return RegistryJSONResponse({"error_code": code, "message": message}, status_code=status)


async def _registry_error(_request: Request, exc: RegistryServiceError) -> RegistryJSONResponse:
    if exc.status >= 500:
        log.error("registry error: %s", exc.message)
    return _error(exc.status, exc.error_code, exc.message)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> RegistryJSONResponse:
    return _error(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}")


async def _validation_error(_request: Request, exc: RequestValidationError) -> RegistryJSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return _error(422, 422, f"Invalid request: {where}: {first['msg']}")


async def _unexpected_error(_request: Request, exc: Exception) -> RegistryJSONResponse:
    log.exception("unexpected registry failure")
    return _error(500, 50001, f"Internal error: {type(exc).__name__}: {exc}")


class NegotiateJSON:
    """Answer ``application/json`` to clients that accept only that, Confluent's type otherwise."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the response content type when the Accept header asks for plain JSON."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
        plain = "application/json" in accept and "vnd.schemaregistry" not in accept
        if not plain:
            await self.app(scope, receive, send)
            return

        async def send_plain(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, b"application/json" if k == b"content-type"
                     and v.startswith(SCHEMA_REGISTRY_JSON.encode()) else v)
                    for k, v in message["headers"]
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_plain)
