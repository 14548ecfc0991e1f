"""Engagement side effects around the pure logic: Cassandra state, Redis, and what to emit.

Framework-free (no faust): :class:`EngagementProcessor` takes async ``emit_counts`` and
``emit_notification`` callables, so the Faust agent and tests drive the same code. Every side
effect is idempotent and derived from the *current* state, not from a delta, so re-processing a
record after a crash (Cassandra written, Redis/affinity/emits not) completes the missing effects
without double counting.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cassandra.cluster import Session

from stores.counters import CounterStore, affinity_key, window_member, write_hot_counts
from streams.ids import id_timestamp_ms
from topologies.engagement.logic import (
    WINDOW_MS, Counts, Notify, apply, member_key, millis, window_of,
)

log = logging.getLogger(__name__)
CountsEmitter = Callable[[int, dict[str, Any]], Awaitable[None]]
NotifyEmitter = Callable[[Notify], Awaitable[None]]
REACTION_KINDS = ("LIKE", "LOVE", "HAHA", "WOW", "SAD", "ANGRY")
EMIT_NS = uuid.UUID("0b5c0f0a-7a43-4e0e-bf0a-2f1f4c7d9e21")


class ConcurrentWriter(RuntimeError):
    """The post's revision kept changing under us (another writer); the worker must crash."""


@dataclass(frozen=True)
class Config:
    """Knobs: how long to wait for a young post to appear before rejecting, CAS retries."""

    missing_grace_ms: int = 30_000
    missing_wait_s: float = 5.0
    cas_retries: int = 20


async def aexec(session: Session, stmt: Any, params: Any = None) -> list[Any]:
    """Execute on the driver's event loop and await the first page of rows."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[Any]] = loop.create_future()
    rf = session.execute_async(stmt, params)

    def ok(rows: Any) -> None:
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(list(rows or [])))

    def err(exc: BaseException) -> None:
        loop.call_soon_threadsafe(lambda: fut.done() or fut.set_exception(exc))

    rf.add_callbacks(ok, err)
    return await fut


def counts_value(post_id: int, c: Counts, window: int | None, source_event: str) -> dict[str, Any]:
    """An EngagementCount value (deterministic event id per post, window and source event)."""
    eid = str(uuid.uuid5(EMIT_NS, f"{post_id}:{window}:{source_event}"))
    return {"event_id": eid, "occurred_at": int(time.time() * 1000), "actor_id": "engagement",
            "schema_version": 1, "post_id": post_id, "window_start": window,
            "window_end": None if window is None else window + WINDOW_MS, **c.as_dict()}


class EngagementProcessor:
    """Applies engagement events to the durable state and performs the derived side effects."""

    def __init__(self, session: Session, redis: Any, emit_counts: CountsEmitter,
                 emit_notification: NotifyEmitter, config: Config | None = None) -> None:
        self.session, self.redis = session, redis
        self.store = CounterStore(session)
        self.emit_counts, self.emit_notification = emit_counts, emit_notification
        self.config = config or Config()
        self.q_post = session.prepare("SELECT deleted FROM posts WHERE post_id=?")

    async def post_status(self, post_id: int) -> str:
        """``live``, ``deleted`` or ``missing`` (waits a little for a post younger than the grace)."""
        deadline = time.monotonic() + self.config.missing_wait_s
        while True:
            rows = await aexec(self.session, self.q_post, (post_id,))
            if rows:
                return "deleted" if rows[0].deleted else "live"
            young = id_timestamp_ms(post_id) > time.time() * 1000 - self.config.missing_grace_ms
            if not young or time.monotonic() > deadline:
                return "missing"
            await asyncio.sleep(0.1)

    async def reject(self, name: str, ev: Mapping[str, Any], reason: str, partition: int,
                     offset: int) -> None:
        """Record an engagement that is not counted, with its reason."""
        log.info("rejected %s %s on post %s: %s", name, ev["event_id"], ev["post_id"], reason)
        await aexec(self.session, self.store.i_reject, (
            int(ev["post_id"]), str(ev["event_id"]), name, str(ev["user_id"]), reason,
            millis(ev["occurred_at"]), partition, offset, int(time.time() * 1000)))

    async def handle(self, name: str, ev: Mapping[str, Any], partition: int = -1,
                     offset: int = -1) -> Counts | None:
        """Process one engagement event end to end; returns the post's totals (None if rejected)."""
        post_id = int(ev["post_id"])
        status = await self.post_status(post_id)
        if status != "live":
            await self.reject(name, ev, f"post_{'deleted' if status == 'deleted' else 'not_found'}",
                              partition, offset)
            return None
        key, ws = member_key(name, ev), window_of(millis(ev["occurred_at"]))
        keys = {key, window_member(ws)}
        if name == "CommentAdded" and ev.get("parent_comment_id") is not None:
            keys.add(f"c:{ev['parent_comment_id']}")
        for _ in range(self.config.cas_retries):
            q_statics, q_rows = self.store.load_statements(post_id, keys)
            statics, rows = await asyncio.gather(aexec(self.session, q_statics),
                                                 aexec(self.session, q_rows))
            read_rev = statics[0].rev if statics and statics[0].rev is not None else None
            state, windows = self.store.decode_load(post_id, statics, rows)
            out = apply(state, name, ev)
            if not out.changed:
                break
            new_windows: dict[int, Counts] = {}
            if not out.delta.is_zero():
                windows[ws] = new_windows[ws] = windows.get(ws, Counts()) + out.delta
            members = {key: out.member} if out.member is not None else {}
            res = await aexec(self.session, self.store.save_batch(state, read_rev, members, new_windows))
            if res and res[0].applied:
                break
        else:
            raise ConcurrentWriter(f"post {post_id}: revision changed {self.config.cas_retries} times")
        await self._downstream(post_id, str(ev["post_author_id"]), out.member, state.totals,
                               windows.get(ws), ws, str(ev["event_id"]), key)
        for note in out.notifications:
            await self.emit_notification(note)
        return state.totals

    async def _downstream(self, post_id: int, author: str, member: Any, totals: Counts,
                          window: Counts | None, ws: int, event_id: str, key: str) -> None:
        """Affinity, hot counters and the derived counts topic, all absolute (idempotent)."""
        reader = getattr(member, "user", "")

        async def affinity_and_hot() -> None:
            aff: int | None = None
            if reader and reader != author:
                stmt = self.store.i_aff if member.present else self.store.d_aff
                await aexec(self.session, stmt, (reader, author, post_id, key))
                aff = int((await aexec(self.session, self.store.q_aff, (reader, author)))[0][0])
            pipe = self.redis.pipeline(transaction=False)
            write_hot_counts(pipe, post_id, totals, REACTION_KINDS)
            if aff is not None:
                pipe.hset(affinity_key(reader), author, aff)
            await pipe.execute()

        async def emits() -> None:  # window first, totals last (the topic is compacted by post)
            if window is not None:
                await self.emit_counts(post_id, counts_value(post_id, window, ws, event_id))
            await self.emit_counts(post_id, counts_value(post_id, totals, None, event_id))

        await asyncio.gather(affinity_and_hot(), emits())
