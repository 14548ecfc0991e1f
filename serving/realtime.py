"""Realtime push of a user's feed changes and notifications: WebSocket and Server-Sent Events.

One Redis pub/sub connection per process (:class:`Hub`) subscribes ``feed:{user}`` while that user
has at least one client, and copies each message into every client's bounded queue without
waiting: when a queue is full its oldest message is dropped and the client is told how many it
missed, so a slow client never blocks the hub or the others. Clients authenticate with the same
JWT (``Authorization: Bearer`` or ``?token=`` for browsers' WebSocket) and may only subscribe to
their own feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from core import tracing
from core.settings import Settings
from serving.auth import InvalidToken, require_self, verify_token
from serving.deps import CurrentUser
from serving.errors import read_responses
from serving.payloads import USER_ID_PATTERN
from serving.settings import settings_of
from stores.timelines import channel

log = logging.getLogger(__name__)
NO_SPAN = contextlib.nullcontext()
router = APIRouter(prefix="/users/{user_id}/feed", tags=["realtime"])
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]


class Client:
    """One subscriber: a bounded queue and a count of messages dropped because it was slow."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, msg: dict[str, Any]) -> None:
        """Enqueue without waiting; drop the oldest message when full."""
        while True:
            try:
                self.queue.put_nowait(msg)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1

    async def next(self) -> dict[str, Any]:
        """The next message, or an ``overflow`` notice first if messages were dropped."""
        if self.dropped:
            n, self.dropped = self.dropped, 0
            return {"type": "overflow", "dropped": n}
        return await self.queue.get()


def parse(data: bytes | str) -> dict[str, Any]:
    """A pub/sub payload as a typed message (fan-out's timeline changes get ``type: feed``)."""
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"type": "unknown", "raw": data.decode() if isinstance(data, bytes) else data}
    if isinstance(msg, dict):
        msg.setdefault("type", "feed")
        return msg
    return {"type": "unknown", "raw": msg}


class Hub:
    """Shares one pub/sub connection among all clients of this process."""

    def __init__(self, redis_url: str, queue_size: int = 256) -> None:
        self.redis = aioredis.Redis.from_url(redis_url, socket_connect_timeout=2)
        self.queue_size = queue_size
        self.clients: dict[str, set[Client]] = {}
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._task: asyncio.Task[None] | None = None
        # (un)subscribes one at a time: redis-py's PubSub opens its connection lazily and unguarded, so
        # two first subscribes at once each opened one and the channel on the losing one was never read
        self._lock = asyncio.Lock()
        self.delivered = 0

    async def subscribe(self, user: str) -> Client:
        """Register a client for ``user``'s channel (its SUBSCRIBE is sent when this returns)."""
        client = Client(self.queue_size)
        async with self._lock:
            first = user not in self.clients
            self.clients.setdefault(user, set()).add(client)
            if first:
                try:
                    await self._pubsub.subscribe(channel(user))
                except BaseException:
                    self._forget(user, client)
                    raise
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._pump(), name="realtime-hub")
        return client

    def _forget(self, user: str, client: Client) -> None:
        group = self.clients.get(user, set())
        group.discard(client)
        if not group:
            self.clients.pop(user, None)

    async def unsubscribe(self, user: str, client: Client) -> None:
        """Drop a client; unsubscribe the channel with its last client."""
        async with self._lock:
            if user not in self.clients:
                return
            self._forget(user, client)
            if user not in self.clients:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel(user))

    def dispatch(self, channel: str, data: bytes) -> None:
        """Copy one message to every client of its channel (never waits)."""
        user = channel.split(":", 1)[1]
        msg = parse(data)
        parent = msg.pop(tracing.HEADER, None)  # set by the fan-out when tracing is on; not for clients
        with tracing.span("feed push", parent=parent, kind=tracing.SpanKind.PRODUCER,
                          attributes={"feedstream.reader": user}) if parent and tracing.ENABLED else NO_SPAN:
            for client in list(self.clients.get(user, ())):
                client.offer(msg)
                self.delivered += 1

    async def _pump(self) -> None:
        while True:
            try:
                if not self._pubsub.subscribed:
                    if self.clients:  # clients whose SUBSCRIBE failed (Redis was down): try again
                        await asyncio.sleep(1.0)
                        await self._resubscribe()
                    else:
                        await asyncio.sleep(0.05)
                    continue
                msg = await self._pubsub.get_message(timeout=1.0)
                if msg and msg["type"] == "message":
                    ch = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                    self.dispatch(ch, msg["data"])
            except asyncio.CancelledError:
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as exc:
                log.warning("realtime hub lost Redis (%s); resubscribing in 1s", exc)
                await asyncio.sleep(1.0)
                await self._resubscribe()

    async def _resubscribe(self) -> None:
        async with self._lock:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            channels = [channel(u) for u in self.clients]
            if channels:
                with contextlib.suppress(aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                    await self._pubsub.subscribe(*channels)

    async def close(self) -> None:
        """Stop the pump and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self.redis.aclose()


def get_hub(request: Request) -> Hub:
    """The app's realtime hub."""
    return request.app.state.hub


@router.websocket("/live")
async def feed_live(websocket: WebSocket, user_id: UserPath,
                    token: Annotated[str | None, Query(description="JWT, for clients that cannot set headers")] = None) -> None:
    """Push ``feed:{user_id}`` messages as JSON text frames to the feed's owner."""
    settings: Settings = settings_of(websocket.app)
    header = websocket.headers.get("authorization", "")
    raw = token or (header[7:] if header.lower().startswith("bearer ") else None)
    try:
        subject = verify_token(raw or "", settings)
    except InvalidToken:
        await websocket.close(code=4401, reason="invalid or missing token")
        return
    if subject != user_id:
        await websocket.close(code=4403, reason="you may only subscribe to your own feed")
        return
    hub: Hub = websocket.app.state.hub
    await websocket.accept()
    client = await hub.subscribe(user_id)
    await websocket.send_json({"type": "subscribed", "user_id": user_id})

    async def pump() -> None:
        while True:
            await websocket.send_json(await client.next())

    async def drain() -> None:
        while True:
            await websocket.receive_text()

    tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await t
        await hub.unsubscribe(user_id, client)


@router.get("/stream", summary="Server-Sent Events of the caller's feed changes and notifications",
            responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
                       **read_responses(401, 403, 503, e403="another user's stream",
                                        e503="Redis unavailable, retry later (see Retry-After)")})
async def feed_stream(user_id: UserPath, user: CurrentUser, request: Request,
                      hub: Annotated[Hub, Depends(get_hub)]) -> StreamingResponse:
    require_self(user, user_id)
    client = await hub.subscribe(user_id)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b": subscribed\n\n"
            while not await request.is_disconnected():
                try:
                    msg = await asyncio.wait_for(client.next(), timeout=15.0)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield b"event: " + msg["type"].encode() + b"\ndata: " + orjson.dumps(msg) + b"\n\n"
        finally:
            await hub.unsubscribe(user_id, client)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
