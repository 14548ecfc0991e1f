"""Read-your-writes: consistency tokens on every 202, bounded event-driven waits on reads (issue 23).

A token names where a write's events landed (topic, partition, offset), signed with a key derived
from the API secret (as cursors are): ``base64url(json) + "." + base64url(mac[:16])``. A read given
one (header ``X-Consistency-Token``), and a read of one's *own* data (the API keeps each user's
newest write positions, :func:`stores.progress.record_user`), waits until every topology that
maintains the view read (:data:`VIEWS`) has applied those offsets (:mod:`stores.progress` marks;
after a Redis loss, the topology's committed offsets in Kafka). The wait is bounded
(``consistency_wait_s``) and woken by the marks' pub/sub, never a sleep loop; past the bound the
read answers with what it has and ``"consistency": {"satisfied": false, ...}``; it never errors.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

import redis.asyncio as aioredis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from fastapi import Header, HTTPException, Request

from core.settings import Settings
from stores import progress
from stores.progress import Marks, Position

if TYPE_CHECKING:
    from serving.writes import Write

log = logging.getLogger(__name__)
HEADER = "X-Consistency-Token"
STATE_HEADER = "X-Consistency"
TokenHeader = Annotated[str | None, Header(alias=HEADER, max_length=2048,
                                           description="consistency_token of an earlier 202: wait until "
                                                       "the view read has applied that write (bounded)")]

# Each read view -> the (topology, topic) pairs it is built from: a write on ``topic`` is visible in
# the view once ``topology`` has applied its offset. (The topologies consume: users <- users.v1,
# engagements.v1; graph <- graph.v1; engagement <- engagements.v1, posts.v1, graph.v1,
# notifications.v1; fanout <- posts.v1.)
VIEWS: dict[str, tuple[tuple[str, str], ...]] = {
    # every view of a user's data first checks the user's profile exists (404 otherwise): users.v1.
    "profile": (("users", "users.v1"), ("graph", "graph.v1")),      # profile + follower counts
    "edges": (("users", "users.v1"), ("graph", "graph.v1")),        # followers / following
    "user_posts": (("users", "users.v1"), ("fanout", "posts.v1"), ("graph", "graph.v1")),  # blocks hide
    "feed": (("users", "users.v1"), ("fanout", "posts.v1"), ("graph", "graph.v1")),  # negative sets
    "post": (("fanout", "posts.v1"), ("engagement", "engagements.v1"), ("graph", "graph.v1")),
    "comments": (("users", "engagements.v1"), ("fanout", "posts.v1")),
    "notifications": (("engagement", "engagements.v1"), ("engagement", "graph.v1")),
}


# -- tokens ------------------------------------------------------------------------------------
def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"feedstream-consistency-v1", hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_token(secret: str, positions: Iterable[Position]) -> str:
    """The opaque token naming ``positions`` (the highest offset per partition)."""
    marks = progress.highest(positions)
    payload = json.dumps([[t, p, o] for (t, p), o in sorted(marks.items())], separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(hmac.new(_key(secret), payload, hashlib.sha256).digest()[:16])}"


def decode_token(secret: str, token: str) -> list[Position] | None:
    """The positions a token names, or None if it is malformed or not signed with ``secret``."""
    try:
        body, mac = token.split(".")
        payload = _unb64(body)
        if not hmac.compare_digest(_unb64(mac), hmac.new(_key(secret), payload, hashlib.sha256).digest()[:16]):
            return None
        return [(str(t), int(p), int(o)) for t, p, o in json.loads(payload)]
    except (ValueError, TypeError):
        return None


# -- the rule (pure) ---------------------------------------------------------------------------
Need = tuple[str, str, int, int]  # topology, topic, partition, offset


def needs(view: str, positions: Iterable[Position]) -> list[Need]:
    """What a read of ``view`` must wait for: each position on a topic one of its topologies consumes."""
    marks = progress.highest(positions)
    return [(topo, topic, part, off) for topo, t in VIEWS[view]
            for (topic, part), off in sorted(marks.items()) if topic == t]


def pending(wanted: Iterable[Need], marks: Mapping[str, Marks]) -> list[Need]:
    """The needs not yet applied: a topology's mark for the partition is below the offset."""
    return [n for n in wanted if marks.get(n[0], {}).get((n[1], n[2]), -1) < n[3]]


def merge(into: dict[str, Marks], more: Mapping[str, Marks]) -> None:
    """Raise ``into``'s marks to ``more``'s (marks only grow)."""
    for topo, m in more.items():
        have = into.setdefault(topo, {})
        for tp, off in m.items():
            if off > have.get(tp, -1):
                have[tp] = off


# -- the wait (glue) ---------------------------------------------------------------------------
class Watcher:
    """One pub/sub subscription per API process to every topology's progress channel.

    :attr:`latest` holds the marks seen in messages; :attr:`changed` is set (and replaced) on each.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.latest: dict[str, Marks] = {}
        self.changed = asyncio.Event()
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Subscribe (once; again after the connection failed) and wait for the confirmation."""
        if self._task is not None and not self._task.done():
            return
        async with self._lock:
            if self._task is not None and not self._task.done():
                return
            self._pubsub = self.redis.pubsub()
            await self._pubsub.psubscribe(f"{progress.PREFIX}*")
            while (await self._pubsub.get_message(timeout=1.0)) is None:
                pass  # the psubscribe confirmation: from here on no mark is missed
            self._task = asyncio.create_task(self._listen())

    async def _listen(self) -> None:
        try:
            while True:  # get_message with a timeout: an idle subscription is not a read timeout
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg is None or msg.get("type") != "pmessage":
                    continue
                channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                merge(self.latest, {channel[len(progress.PREFIX):]: progress.parse(json.loads(msg["data"]))})
                woken, self.changed = self.changed, asyncio.Event()
                woken.set()
        except Exception as exc:  # noqa: BLE001 - the next wait subscribes again; waits in flight end at their bound
            log.warning("progress subscription lost: %r", exc)

    async def close(self) -> None:
        """Stop listening and drop the subscription."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pubsub is not None:
            await self._pubsub.aclose()


def watcher(request: Request) -> Watcher:
    """The app's :class:`Watcher` (created on first use)."""
    state = request.app.state
    if getattr(state, "progress_watcher", None) is None:
        state.progress_watcher = Watcher(state.redis)
    return state.progress_watcher


async def close(state: Any) -> None:
    """Close the app's watcher, if any (lifespan shutdown)."""
    w = getattr(state, "progress_watcher", None)
    if w is not None:
        await w.close()


async def committed_marks(request: Request, settings: Settings, missing: list[Need],
                          timeout_s: float) -> dict[str, Marks]:
    """Marks absent from Redis (lost): each topology's committed offsets in Kafka, minus one."""
    admin = request.app.state.kafka_admin
    out: dict[str, Marks] = {}
    for topo in sorted({n[0] for n in missing}):
        tps = [TopicPartition(t, p) for _, t, p, _ in {n for n in missing if n[0] == topo}]
        req = [ConsumerGroupTopicPartitions(progress.group_id(settings, topo), tps)]

        def lookup(req: list[Any] = req) -> list[Any]:
            [fut] = admin.list_consumer_group_offsets(req, request_timeout=timeout_s).values()
            return list(fut.result(timeout=timeout_s).topic_partitions)

        try:
            got = await asyncio.to_thread(lookup)
        except Exception as exc:  # noqa: BLE001 - unknown: wait for the marks instead
            log.info("committed offsets of %s unavailable: %r", topo, exc)
            continue
        out[topo] = {(tp.topic, tp.partition): tp.offset - 1 for tp in got if tp.offset >= 0}
    return out


async def settle(request: Request, view: str, user: str, token: str | None, *, own: bool) -> dict[str, Any] | None:
    """Wait (bounded) until ``view`` reflects ``token``'s writes and, for ``own`` data, ``user``'s
    newest writes; return the answer's ``consistency`` object (None: nothing was asked)."""
    settings: Settings = request.app.state.settings
    own = own and settings.consistency_own_reads
    if token is None and not own:
        return None
    t0 = time.monotonic()
    deadline = t0 + settings.consistency_wait_s
    positions = [] if token is None else decode_token(settings.signing_secret(), token)
    info: dict[str, Any] = {"satisfied": False, "waited_ms": 0}
    if positions is None:
        info["invalid_token"] = True
        positions = []
    r: aioredis.Redis = request.app.state.redis
    topologies = sorted({topo for topo, _ in VIEWS[view]})
    try:
        w = watcher(request)
        await asyncio.wait_for(w.start(), max(deadline - time.monotonic(), 0.001))
        woken = w.changed
        pipe = r.pipeline(transaction=False)
        if own:
            pipe.hgetall(progress.user_key(user))
        for topo in topologies:
            pipe.hgetall(progress.key(topo))
        got = await pipe.execute()
        if own:
            positions += [(t, p, o) for (t, p), o in progress.parse(got.pop(0)).items()]
        marks = {topo: progress.parse(raw) for topo, raw in zip(topologies, got)}
        wanted = needs(view, positions)
        absent = [n for n in wanted if (n[1], n[2]) not in marks.get(n[0], {})]
        if absent:
            merge(marks, await committed_marks(request, settings, absent, max(deadline - time.monotonic(), 0.05)))
        merge(marks, w.latest)
        left = pending(wanted, marks)
        while left and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(woken.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
            woken = w.changed
            merge(marks, w.latest)
            left = pending(wanted, marks)
    except Exception as exc:  # noqa: BLE001 - Redis or Kafka failing: answer with what there is, never an error
        log.info("consistency wait for %s failed: %r", view, exc)
        info["error"] = type(exc).__name__
        left = needs(view, positions)
    info["waited_ms"] = int((time.monotonic() - t0) * 1000)
    info["satisfied"] = not left and not info.get("invalid_token") and "error" not in info
    if left:
        info["pending"] = [{"topology": a, "topic": t, "partition": p, "offset": o} for a, t, p, o in left]
    return info


def with_consistency(body: dict[str, Any], info: dict[str, Any] | None) -> dict[str, Any]:
    """``body`` with its ``consistency`` object, when one was asked for."""
    if info is not None:
        body["consistency"] = info
    return body


async def answer(info: dict[str, Any] | None, read: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """The read's body with its ``consistency`` object; an error answer (e.g. a 404 for a profile
    not written yet) carries it as the ``X-Consistency`` header (JSON) instead."""
    try:
        body = await read
    except HTTPException as exc:
        if info is not None:
            exc.headers = {**(exc.headers or {}), STATE_HEADER: json.dumps(info, separators=(",", ":"))}
        raise
    return with_consistency(body, info)


# -- the write side ----------------------------------------------------------------------------
def stamp(settings: Settings, body: dict[str, Any], positions: list[Position]) -> dict[str, str]:
    """Add the write's ``consistency_token`` to its 202 ``body``; return the answer's headers."""
    if not positions:
        return {}
    body["consistency_token"] = encode_token(settings.signing_secret(), positions)
    return {HEADER: body["consistency_token"]}


def replay_headers(body: Any) -> dict[str, str]:
    """The token header of a replayed 202 (its body kept the token)."""
    token = body.get("consistency_token") if isinstance(body, dict) else None
    return {HEADER: token} if token else {}


async def record_user(w: Write) -> None:
    """Remember the writer's newest write positions (own reads wait on them); never raises."""
    if not w.positions or not w.settings.consistency_own_reads:
        return
    try:
        await progress.record_user(w.redis, w.user, w.positions, w.settings.consistency_user_ttl_s)
    except Exception as exc:  # noqa: BLE001 - the event is in Kafka: the write stands; own reads may then be stale
        log.warning("could not record %s's write positions: %r", w.user, exc)
