"""A request id on every request: the client's ``X-Request-ID`` or a fresh one, echoed in the response.

It is set in :data:`core.logs.REQUEST_ID` for the request, so every log line of it (uvicorn's access
line included, which is written from inside the response) carries it.
"""

from __future__ import annotations

import re
import uuid

from core.logs import REQUEST_ID
from serving.middleware import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
SCOPE_KEY = "feedstream.request_id"  # an id the feed's front door (serving/feed/thin.py) already chose
_VALID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


def choose(scope: Scope) -> bytes:
    """The request's id: its sane ``X-Request-ID``, or a fresh one."""
    given = next((v for k, v in scope.get("headers") or () if k == HEADER), None)
    return given if given is not None and _VALID.match(given) else uuid.uuid4().hex.encode()


class RequestId:
    """Pure ASGI middleware: adopt a sane incoming id or mint one; answer it in ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = scope.get(SCOPE_KEY) or choose(scope)
        token = REQUEST_ID.set(rid.decode())

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, with_id)
        finally:
            REQUEST_ID.reset(token)
