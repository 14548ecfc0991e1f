"""The home feed's thin route: a plain ASGI handler in front of FastAPI's routing for the common case.

``GET /v1/users/{user_id}/feed`` is declared as a FastAPI route (:mod:`serving.routers.reads_feed`),
which documents it in OpenAPI and answers every unusual request. :class:`FeedRoute`, mounted first
in the app's routes, answers the common one without FastAPI's dependency resolution (which was the
largest cost of a page): a valid bearer token of the feed's owner, valid parameters, no consistency
token. It takes the reader's read rate limit inside the page script (:mod:`stores.feedpage`), so a
page costs one Redis round trip, and falls back, in order:

- anything it does not fully understand (a missing, malformed or invalid token, another user's feed,
  a parameter FastAPI would refuse with 422, a bad cursor, an ``X-Consistency-Token`` to wait for,
  Redis failing or its breaker open before the script ran) -> the declared FastAPI route, untouched,
  so every status (401/403/400/422/429/503) and body stays exactly as FastAPI maps it;
- the script ran (tokens taken) but the page is not the common case -> the full pipeline on the read
  pool, as the declared route would run it (404/403/503 through the same HTTP exceptions);
- an empty bucket -> 429 with Retry-After, the same body as :func:`serving.deps.too_many`.

Exceptions propagate to the app's exception handlers, as from any route.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException
from starlette.routing import Match, Route

from serving.auth import InvalidToken, verify_token
from serving.deps import read_buckets, too_many
from serving.feed.cursor import BadCursor
from serving.feed.engines import ReadEngines
from serving.feed.fast import Declined, encode, fast_page
from serving.feed.pipeline import read_known_feed
from serving.middleware import Receive, Scope, Send
from serving.payloads import USER_ID_PATTERN
from stores.feedpage import Limited

PATH = "/v1/users/{user_id}/feed"
SLOW = "feedstream.slow"  # scope flag: this request is for the declared FastAPI route
ALGORITHMS = ("chronological", "ranked")
_USER = re.compile(USER_ID_PATTERN)
_LIMIT = re.compile(r"[0-9]{1,3}")
CURSOR_MAX, TOKEN_HEADER = 512, b"x-consistency-token"


def page_request(scope: Scope) -> tuple[str, str, str, int, str | None] | None:
    """``(bearer token, user_id, algorithm, limit, cursor)`` of a request the thin route can answer as
    the declared route would, or None (the declared route answers). Pure: reads only ``scope``."""
    user_id = scope["path_params"].get("user_id", "")
    if _USER.fullmatch(user_id) is None:
        return None
    # as Starlette parses a query string (the last of repeated names wins, as FastAPI reads it)
    params = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    algorithm = params.get("algorithm", "chronological")
    limit_text = params.get("limit", "20")
    cursor = params.get("cursor")
    if algorithm not in ALGORITHMS or _LIMIT.fullmatch(limit_text) is None or not 1 <= int(limit_text) <= 100:
        return None
    if cursor is not None and len(cursor) > CURSOR_MAX:
        return None
    auth = None
    for name, value in scope.get("headers") or ():
        if name == TOKEN_HEADER:
            return None  # read-your-writes: the declared route waits (serving/consistency.py)
        if name == b"authorization" and auth is None:
            auth = value.decode("latin-1")
    scheme, _, token = (auth or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token, user_id, algorithm, int(limit_text), cursor


class ThinFeed:
    """The ASGI app of :class:`FeedRoute` (an object, so Starlette passes it raw ASGI calls)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: FastAPI = scope["app"]
        e: ReadEngines = app.state.reads
        req = page_request(scope)
        if req is None:
            return await self.declared(scope, receive, send)
        token, user_id, algorithm, limit, cursor = req
        try:
            user = verify_token(token, app.state.settings)
        except InvalidToken:
            return await self.declared(scope, receive, send)  # 401, audited, as FastAPI answers it
        before = None
        if cursor is not None:
            try:
                pos = e.codec.decode(f"feed:{user_id}", cursor)
            except BadCursor:
                return await self.declared(scope, receive, send)
            if not isinstance(pos.before, int):
                return await self.declared(scope, receive, send)
            before = pos.before
        if user != user_id:
            return await self.declared(scope, receive, send)  # 403 after the rate limit, as declared
        client = scope.get("client")
        buckets = [(b.key, b.rate_per_s, b.burst)
                   for b in read_buckets(app.state.settings, user, client[0] if client else "unknown")]
        page = await fast_page(e, user_id, algorithm, limit, before, buckets)
        if isinstance(page, Limited):
            raise too_many(page.wait_ms)
        if isinstance(page, Declined):
            if not page.limited:
                return await self.declared(scope, receive, send)  # nothing taken yet: it decides all
            page = await e.run(read_known_feed, e, user_id, algorithm, limit, before)
            if page is None:
                raise HTTPException(404, f"no user {user_id}")
        await respond(send, encode(page))

    @staticmethod
    async def declared(scope: Scope, receive: Receive, send: Send) -> None:
        """Route the request again, past :class:`FeedRoute`, to the declared FastAPI route."""
        scope[SLOW] = True
        await scope["app"].router(scope, receive, send)


async def respond(send: Send, body: bytes) -> None:
    """A 200 JSON answer, with the headers a Starlette ``Response`` would send."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


class FeedRoute(Route):
    """``GET /v1/users/{user_id}/feed`` before FastAPI's routes; absent from OpenAPI (the declared
    route documents it). It steps aside for other methods and for requests sent on to the declared
    route, so 405s and everything else are FastAPI's."""

    def __init__(self) -> None:
        super().__init__(PATH, ThinFeed(), methods=["GET"], include_in_schema=False, name="feed_thin")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get(SLOW):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is Match.FULL:
            child["route"] = self  # metrics label the request with this route's template
        return match, child


def install(app: FastAPI) -> None:
    """Put :class:`FeedRoute` first in ``app``'s routes (after the declared route was included)."""
    app.router.routes.insert(0, FeedRoute())
