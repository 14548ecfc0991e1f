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
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

from fastapi import FastAPI, HTTPException
from starlette.routing import Match, Route

from core import tracing
from core.logs import REQUEST_ID
from serving.auth import InvalidToken, verify_token
from serving.deps import read_buckets, too_many
from serving.feed.cursor import BadCursor
from serving.feed.engines import ReadEngines
from serving.feed.fast import Declined, encode, fast_page
from serving.feed.pipeline import read_known_feed
from serving.metrics import IN_FLIGHT, T0, observe
from serving.middleware import Receive, Scope, Send
from serving.payloads import USER_ID_PATTERN
from serving.requestid import HEADER as REQUEST_ID_HEADER
from serving.requestid import SCOPE_KEY as REQUEST_ID_KEY
from serving.requestid import choose as choose_request_id
from stores.feedpage import Limited

PATH = "/v1/users/{user_id}/feed"
SLOW = "feedstream.slow"  # scope flag: this request is for the declared FastAPI route
DECIDED = "feedstream.decided"  # scope key: the front door's decision, acted on by ThinFeed
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


@dataclass(frozen=True)
class Pipeline:
    """The script took the tokens but the page is not the common case: the full pipeline answers."""

    user_id: str
    algorithm: str
    limit: int
    before: int | None


@dataclass(frozen=True)
class Raised:
    """:func:`decide` raised (in the front door): raised again inside the app's middleware stack."""

    exc: Exception


DECLARED = "declared"  # the declared FastAPI route answers, untouched
#: what :func:`decide` found: the page's bytes, a 429, the full pipeline, or the declared route
Outcome = bytes | Limited | Pipeline | str


async def decide(app: FastAPI, scope: Scope) -> Outcome:
    """What the thin route answers for ``scope`` (its ``path_params`` set): sends nothing, so the
    front door (:class:`FeedAPI`) can decide before the middleware stack and hand everything but a
    ready page to it."""
    e: ReadEngines = app.state.reads
    req = page_request(scope)
    if req is None:
        return DECLARED
    token, user_id, algorithm, limit, cursor = req
    try:
        user = verify_token(token, app.state.settings)
    except InvalidToken:
        return DECLARED  # 401, audited, as FastAPI answers it
    before = None
    if cursor is not None:
        try:
            pos = e.codec.decode(f"feed:{user_id}", cursor)
        except BadCursor:
            return DECLARED
        if not isinstance(pos.before, int):
            return DECLARED
        before = pos.before
    if user != user_id:
        return DECLARED  # 403 after the rate limit, as declared
    client = scope.get("client")
    buckets = [(b.key, b.rate_per_s, b.burst)
               for b in read_buckets(app.state.settings, user, client[0] if client else "unknown")]
    page = await fast_page(e, user_id, algorithm, limit, before, buckets)
    if isinstance(page, Limited):
        return page
    if isinstance(page, Declined):
        # nothing taken yet: the declared route decides all; else the full pipeline, tokens taken
        return Pipeline(user_id, algorithm, limit, before) if page.limited else DECLARED
    return encode(page)


class ThinFeed:
    """The ASGI app of :class:`FeedRoute` (an object, so Starlette passes it raw ASGI calls). It acts
    on the front door's :func:`decide` when there was one (``scope[DECIDED]``), else decides now."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: FastAPI = scope["app"]
        outcome = scope.pop(DECIDED, None)
        if outcome is None:
            outcome = await decide(app, scope)
        if isinstance(outcome, Raised):
            raise outcome.exc
        if isinstance(outcome, bytes):
            return await respond(send, outcome)
        if isinstance(outcome, Limited):
            raise too_many(outcome.wait_ms)
        if isinstance(outcome, Pipeline):
            e: ReadEngines = app.state.reads
            page = await e.run(read_known_feed, e, outcome.user_id, outcome.algorithm, outcome.limit,
                               outcome.before)
            if page is None:
                raise HTTPException(404, f"no user {outcome.user_id}")
            return await respond(send, encode(page))
        await self.declared(scope, receive, send)

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


class FeedAPI(FastAPI):
    """The API's FastAPI app, with the feed's common page answered in front of the middleware stack.

    A ``GET`` that :class:`FeedRoute` matches is decided (:func:`decide`) before Starlette's and the
    app's middleware (request id, metrics, error handling, body limit, exception handlers, routing),
    which cost about as much as the page itself. A ready page is sent from here with what those
    layers add to a 200 (``X-Request-ID``; the request counted and timed under the route template).
    Any other outcome, an exception included, goes through the whole stack as before, carrying the
    decision (``scope[DECIDED]``): :class:`ThinFeed` acts on it there (429, full pipeline, declared
    route, or the exception raised again), so no bucket is taken twice and every status, body and
    header stays as it was. The front door stays shut when a layer it does not replicate is active
    (tracing, FastAPI's native telemetry, a root path) and for a request that carries a body."""

    front: FeedRoute | None = None  # set by install()
    front_metrics = False  # the app counts requests (serving.metrics installed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.front
        if route is not None and scope["type"] == "http" and scope["method"] == "GET" and DECIDED not in scope:
            match, child = route.matches(scope)
            if match is Match.FULL and self.front_open(scope) and await front_door(self, scope, child, send):
                return
        await super().__call__(scope, receive, send)

    def front_open(self, scope: Scope) -> bool:
        """Whether no layer the front door does not replicate would act on ``scope``."""
        if self.root_path or tracing.ENABLED or self._native_telemetry.enabled():
            return False
        for name, value in scope.get("headers") or ():
            if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
                return False  # BodySizeLimit reads (and may refuse) a body
        return True


async def front_door(app: FeedAPI, scope: Scope, child: Scope, send: Send) -> bool:
    """Decide ``scope``; send a ready page (True), or note the decision for the stack (False)."""
    scope.update(child)
    scope["app"] = app
    t0 = time.perf_counter()
    rid = choose_request_id(scope)
    token = REQUEST_ID.set(rid.decode())
    if app.front_metrics:
        IN_FLIGHT.inc()
    try:
        try:
            outcome: Outcome | Raised = await decide(app, scope)
        except Exception as exc:  # noqa: BLE001 -- raised again inside the stack, where the app's handlers see it
            outcome = Raised(exc)
        if not isinstance(outcome, bytes):
            scope[DECIDED], scope[REQUEST_ID_KEY], scope[T0] = outcome, rid, t0
            return False
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(outcome)).encode()),
                                (b"content-type", b"application/json"), (REQUEST_ID_HEADER, rid)]})
        await send({"type": "http.response.body", "body": outcome})
        if app.front_metrics:
            observe("GET", PATH, 200, time.perf_counter() - t0)
        return True
    finally:
        if app.front_metrics:
            IN_FLIGHT.dec()
        REQUEST_ID.reset(token)


def install(app: FastAPI, metrics_on: bool = False) -> None:
    """Put :class:`FeedRoute` first in ``app``'s routes (after the declared route was included) and,
    if ``app`` is a :class:`FeedAPI`, open its front door (``metrics_on``: the app counts requests)."""
    route = FeedRoute()
    app.router.routes.insert(0, route)
    if isinstance(app, FeedAPI):
        app.front, app.front_metrics = route, metrics_on
