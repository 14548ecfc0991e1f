"""Engagement side effects around the pure logic: Cassandra state, Redis, and what to emit.

Framework-free (no faust): :class:`EngagementProcessor` takes async ``emit_counts`` and
``emit_notification`` callables, so the Faust agent and tests drive the same code. An emitter may
return a delivery awaitable; the processor awaits them all once per batch, after the other side
effects were issued, so offsets (acked after :meth:`EngagementProcessor.handle_batch` returns) are
committed only after every side effect. With ``emit_batch`` (the worker's: one librdkafka
produce of the batch's EngagementCount and Notification records, one flush) a batch's records go
out in one call, awaited before :meth:`EngagementProcessor.handle_batch` returns.

A batch is grouped by post (engagements are keyed by post id, so this partition is the single
writer of its posts): the posts' status and static rows (revision, totals) are read for the whole
batch in a few multi-partition ``IN`` reads, each post's member rows once, the pure logic applies the post's events
in offset order in memory, and the result is written as one conditional single-partition batch
(``IF rev = <read rev>``) per post and chunk of ``settings.engagement_chunk`` events. Downstream effects
(affinity rows, hot counters, derived counts) are written as absolute values derived from the
*current* state, so re-processing a batch after a crash (Cassandra written, Redis/affinity/emits
not) completes the missing effects without double counting. The one delta is the Redis affinity
count: a member whose presence flipped in *this* process's successful CAS moves it by exactly
that (HINCRBY); a touched member that did not change (a duplicate, or a replay after a crash)
makes the pair's count be re-read from its Cassandra rows and set absolutely, as does a missing
Redis field (e.g. after a flush).

Post existence is learnt from the log, not from another topology's progress: the worker also
consumes ``posts.v1`` (:meth:`EngagementProcessor.register_posts`) into its own
``engagement_posts`` table. ``posts.v1`` is keyed by author and ``engagements.v1`` by post, so
the two are not co-partitioned and a like can arrive before its post is known here (e.g. a post
created a millisecond earlier on another partition, or while the posts agent lags). Such an
engagement is *parked* durably in the post's ``engagement_posts`` partition (a conditional batch
``IF known = null``) and its offset is committed; when the PostCreated arrives, the registration
(also conditional, so Paxos orders it against every park) is followed by a SERIAL read of the
parked rows, which are applied through the same exact path and then removed. A park that loses the
race to the registration is applied directly. An engagement on a post that never appears stays
parked (visible with :meth:`stores.counters.CounterStore.parked`), never silently dropped; on a
deleted post it is rejected (``rejected_engagements``, reason ``post_deleted``). Why this design:
docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra import ConsistencyLevel
from cassandra.cluster import Session

from core.clock import millis
from core.rows import Counts, Member, PostState
from core.settings import Settings
from stores import posts as post_store
from stores.counters import (
    CounterStore,
    affinity_key,
    decode_parked,
    window_member,
    write_hot_counts,
)
from topologies.engagement.logic import WINDOW_MS, Notify, apply, member_key, window_of

log = logging.getLogger(__name__)


def _not_batch_warning(record: logging.LogRecord) -> bool:
    return "Unlogged batch covering" not in str(record.args)


# the affinity rows are written as multi-partition unlogged batches on purpose (fewer requests)
logging.getLogger("cassandra.protocol").addFilter(_not_batch_warning)
CountsEmitter = Callable[[int, dict[str, Any]], Awaitable[Any]]
NotifyEmitter = Callable[[Notify], Awaitable[Any]]
# a batch's EngagementCount (post id, value) and Notification records, delivered when it returns
BatchEmitter = Callable[[list[tuple[int, dict[str, Any]]], list[Notify]], Awaitable[None]]
REACTION_KINDS = ("LIKE", "LOVE", "HAHA", "WOW", "SAD", "ANGRY")
EMIT_NS = uuid.UUID("0b5c0f0a-7a43-4e0e-bf0a-2f1f4c7d9e21")
AFFINITY_BATCH = 50  # affinity row writes per unlogged batch
PARK_CHUNK = 50  # parked engagements (or removals) per conditional batch
IN_CHUNK = 100  # posts per multi-partition read (post status, static rows)


class ConcurrentWriter(RuntimeError):
    """The post's revision kept changing under us (another writer); the worker must crash."""


@dataclass(frozen=True)
class Engagement:
    """One engagement record: short record name, decoded value, source coordinates."""

    name: str
    value: Mapping[str, Any]
    partition: int = -1
    offset: int = -1


@dataclass
class PostOutcome:
    """A post's state after a batch: totals, touched members and windows, notifications to emit."""

    post_id: int
    author: str
    last_event: str
    totals: Counts = field(default_factory=Counts)
    members: dict[str, Member] = field(default_factory=dict)
    windows: dict[int, Counts] = field(default_factory=dict)
    notifications: list[Notify] = field(default_factory=list)
    initial: dict[str, bool] = field(default_factory=dict)  # member presence before this batch
    changed: set[str] = field(default_factory=set)  # members this process's CAS changed


async def aexec(session: Session, stmt: Any, params: Any = None) -> list[Any]:
    """Execute on the driver's event loop and await the first page of rows."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[list[Any]] = loop.create_future()
    rf = session.execute_async(stmt, params)

    def set_rows(rows: Any) -> None:
        if not fut.done():
            fut.set_result(list(rows or []))

    def set_error(exc: BaseException) -> None:
        if not fut.done():
            fut.set_exception(exc)

    def ok(rows: Any) -> None:
        loop.call_soon_threadsafe(set_rows, rows)

    def err(exc: BaseException) -> None:
        loop.call_soon_threadsafe(set_error, exc)

    rf.add_callbacks(ok, err)
    return await fut


def counts_value(post_id: int, c: Counts, window: int | None, source_event: str) -> dict[str, Any]:
    """An EngagementCount value (deterministic event id per post, window and source event)."""
    eid = str(uuid.uuid5(EMIT_NS, f"{post_id}:{window}:{source_event}"))
    return {"event_id": eid, "occurred_at": int(time.time() * 1000), "actor_id": "engagement",
            "schema_version": 1, "post_id": post_id, "window_start": window,
            "window_end": None if window is None else window + WINDOW_MS, **c.as_dict()}


def needed_keys(events: Sequence[Engagement]) -> set[str]:
    """Member and window rows that applying ``events`` reads (incl. parent comments for replies)."""
    keys: set[str] = set()
    for e in events:
        keys.add(member_key(e.name, e.value))
        keys.add(window_member(window_of(millis(e.value["occurred_at"]))))
        if e.name == "CommentAdded" and e.value.get("parent_comment_id") is not None:
            keys.add(f"c:{e.value['parent_comment_id']}")
    return keys


class EngagementProcessor:
    """Applies engagement events to the durable state and performs the derived side effects."""

    def __init__(self, session: Session, redis: Any, emit_counts: CountsEmitter,
                 emit_notification: NotifyEmitter, settings: Settings, *,
                 emit_batch: BatchEmitter | None = None) -> None:
        self.session, self.redis = session, redis
        self.settings = settings
        self.emit_batch = emit_batch  # when set, a batch's records go out in one call instead
        self.store = CounterStore(session, window_ttl_s=settings.engagement_window_ttl_s)
        self.emit_counts, self.emit_notification = emit_counts, emit_notification
        self.q_post = post_store.deleted_statement(session)
        # multi-partition reads of a whole batch's posts (IN_CHUNK at a time)
        self.q_known_in = session.prepare(
            "SELECT post_id, known, deleted FROM engagement_posts WHERE post_id IN ? PER PARTITION LIMIT 1")
        self.q_posts_in = session.prepare("SELECT post_id, deleted FROM posts WHERE post_id IN ?")
        self.q_statics_in = session.prepare(
            "SELECT post_id, rev, likes, comments, shares, reactions FROM engagement_state "
            "WHERE post_id IN ? PER PARTITION LIMIT 1")

    async def post_status(self, post_id: int, *, serial: bool = False) -> str:
        """``live``, ``deleted`` or ``unknown``, from this topology's own post table.

        A post not (yet) known there but already stored by the fan-out worker is ``live`` or
        ``deleted`` as that row says: a shortcut only, never needed for correctness (an unknown
        post's engagements are parked, see :meth:`_park`). ``serial`` reads the own table at
        SERIAL (after a park lost to a concurrent registration).
        """
        q = self.store.q_post_known.bind((post_id,))
        if serial:
            q.consistency_level = ConsistencyLevel.SERIAL
        rows = await aexec(self.session, q)
        if rows and rows[0].known:
            return "deleted" if rows[0].deleted else "live"
        rows = await aexec(self.session, self.q_post, (post_id,))
        if rows:
            return "deleted" if rows[0].deleted else "live"
        return "unknown"

    async def _park(self, post_id: int, events: list[Engagement]) -> list[Engagement]:
        """Park ``events`` of a post not known yet; returns those that found the post known.

        Each chunk is one conditional batch ``IF known = null`` on the post's partition of
        ``engagement_posts``: it commits only while the post is unknown, so every parked event is
        seen by :meth:`register_posts` when the post arrives; a chunk that loses the race (the
        post was just registered) is returned to be applied directly.
        """
        now = int(time.time() * 1000)
        for i in range(0, len(events), PARK_CHUNK):
            chunk = events[i:i + PARK_CHUNK]
            batch = self.store.park_batch(post_id, [
                (str(e.value["event_id"]), e.name, e.value, e.partition, e.offset) for e in chunk], now)
            done = await aexec(self.session, batch)
            if not (done and done[0].applied):
                return events[i:]
            log.info("parked %d engagements on post %s until it is known", len(chunk), post_id)
        return []

    async def register_posts(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Learn posts from ``posts.v1`` records, then apply the engagements parked on them.

        The registration is a conditional write (so it is serialised with the parks, see
        :meth:`_park`); the parked rows are read at SERIAL afterwards, applied through
        :meth:`handle_batch` (exact and idempotent: a replay applies nothing twice) and removed
        only after that, so a crash in between re-applies them on the next delivery.
        """
        last: dict[int, tuple[str, str]] = {}
        for name, v in records:
            pid = int(v["post_id"])
            if last.get(pid, ("",))[0] != "PostDeleted":
                last[pid] = (name, str(v["author_id"]))
        await asyncio.gather(*(self._register(pid, name, author) for pid, (name, author) in last.items()))

    async def _register(self, post_id: int, name: str, author: str) -> None:
        """Make the post known; apply what is parked on it (one Paxos write if nothing ever was)."""
        if name != "PostDeleted":
            done = await aexec(self.session, self.store.register_statement(name, post_id, author,
                                                                           first=True))
            if not done or done[0].applied:
                return  # registered, and no park ever committed before: any later park fails
            if done[0].known and not done[0].parked:
                return  # a replay of a post that never had a park
            if done[0].known:
                await self._unpark(post_id)
                return
        await aexec(self.session, self.store.register_statement(name, post_id, author))
        await self._unpark(post_id)

    async def _unpark(self, post_id: int) -> None:
        rows = [r for r in await aexec(self.session, self.store.parked_statement(post_id))
                if r.event_id]
        if not rows:
            return
        rows.sort(key=lambda r: (r.source_partition, r.source_offset))
        await self.handle_batch([Engagement(r.record, decode_parked(r.value), r.source_partition,
                                            r.source_offset) for r in rows])
        ids = [r.event_id for r in rows]
        await asyncio.gather(*(aexec(self.session, self.store.unpark_batch(post_id, ids[i:i + PARK_CHUNK]))
                               for i in range(0, len(ids), PARK_CHUNK)))
        log.info("applied %d parked engagements on post %s", len(rows), post_id)

    async def reject(self, e: Engagement, reason: str) -> None:
        """Record an engagement that is not counted (its post is deleted), with its reason."""
        ev = e.value
        log.info("rejected %s %s on post %s: %s", e.name, ev["event_id"], ev["post_id"], reason)
        await aexec(self.session, self.store.i_reject, (
            int(ev["post_id"]), str(ev["event_id"]), e.name, str(ev["user_id"]), reason,
            millis(ev["occurred_at"]), e.partition, e.offset, int(time.time() * 1000)))

    async def handle(self, name: str, ev: Mapping[str, Any], partition: int = -1,
                     offset: int = -1) -> Counts | None:
        """Process one engagement event end to end; returns the post's totals (None if parked or rejected)."""
        return (await self.handle_batch([Engagement(name, ev, partition, offset)]))[int(ev["post_id"])]

    async def handle_batch(self, batch: Sequence[Engagement]) -> dict[int, Counts | None]:
        """Process a batch (in offset order); returns each post's totals (None if parked or rejected)."""
        by_post: dict[int, list[Engagement]] = {}
        for e in batch:
            by_post.setdefault(int(e.value["post_id"]), []).append(e)
        statuses, statics = await asyncio.gather(self.post_statuses(list(by_post)),
                                                 self._load_statics(list(by_post)))
        done = await asyncio.gather(*(self._post(p, evs, statuses[p], statics.get(p, []))
                                      for p, evs in by_post.items()))
        results = [r for r in done if r is not None]
        await self._downstream(results)
        out: dict[int, Counts | None] = {p: None for p in by_post}
        out.update({r.post_id: r.totals for r in results})
        return out

    async def post_statuses(self, post_ids: list[int]) -> dict[int, str]:
        """:meth:`post_status` of many posts in a few multi-partition reads (``IN_CHUNK`` posts each)."""
        out = {pid: "unknown" for pid in post_ids}
        chunks = [post_ids[i:i + IN_CHUNK] for i in range(0, len(post_ids), IN_CHUNK)]
        for rows in await asyncio.gather(*(aexec(self.session, self.q_known_in, (c,)) for c in chunks)):
            for r in rows:
                if r.known:
                    out[r.post_id] = "deleted" if r.deleted else "live"
        rest = [pid for pid, st in out.items() if st == "unknown"]
        chunks = [rest[i:i + IN_CHUNK] for i in range(0, len(rest), IN_CHUNK)]
        for rows in await asyncio.gather(*(aexec(self.session, self.q_posts_in, (c,)) for c in chunks)):
            for r in rows:
                out[r.post_id] = "deleted" if r.deleted else "live"
        return out

    async def _load_statics(self, post_ids: list[int]) -> dict[int, list[Any]]:
        """The static rows (revision, totals) of many posts in a few multi-partition reads."""
        chunks = [post_ids[i:i + IN_CHUNK] for i in range(0, len(post_ids), IN_CHUNK)]
        out: dict[int, list[Any]] = {}
        for rows in await asyncio.gather(*(aexec(self.session, self.q_statics_in, (c,)) for c in chunks)):
            for r in rows:
                out[r.post_id] = [r]
        return out

    async def _load(self, post_id: int, keys: set[str]) -> tuple[list[Any], list[Any]]:
        """The post's static row and the rows of ``keys`` (concurrently)."""
        q_statics, q_rows = self.store.load_statements(post_id, keys)
        statics, rows = await asyncio.gather(aexec(self.session, q_statics),
                                             aexec(self.session, q_rows))
        return statics, rows

    async def _post(self, post_id: int, events: list[Engagement], status: str,
                    statics: list[Any]) -> PostOutcome | None:
        """Apply a post's events chunk by chunk, given its status and static row (read for the
        whole batch by :meth:`handle_batch`); the first chunk reads only its member rows."""
        size = self.settings.engagement_chunk
        chunks = [events[i:i + size] for i in range(0, len(events), size)]
        first: tuple[list[Any], list[Any]] = (statics, await aexec(
            self.session, self.store.load_statements(post_id, needed_keys(chunks[0]))[1]))
        if status == "unknown":
            events = await self._park(post_id, events)
            if not events:
                return None
            status = await self.post_status(post_id, serial=True)
            if status == "live" and len(events) != sum(map(len, chunks)):
                chunks = [events[i:i + size] for i in range(0, len(events), size)]
                first = await self._load(post_id, needed_keys(chunks[0]))
        if status != "live":
            await asyncio.gather(*(self.reject(e, "post_deleted") for e in events))
            return None
        last = events[-1].value
        res = PostOutcome(post_id, str(last["post_author_id"]), str(last["event_id"]))
        for i, chunk in enumerate(chunks):
            await self._apply_chunk(res, chunk, first if i == 0 else None)
        return res

    async def _apply_chunk(self, res: PostOutcome, chunk: list[Engagement],
                           loaded: tuple[list[Any], list[Any]] | None = None) -> None:
        """Load, apply and CAS-write one chunk, retrying on a concurrent revision change."""
        keys = needed_keys(chunk)
        for _ in range(self.settings.engagement_cas_retries):
            statics, rows = loaded or await self._load(res.post_id, keys)
            loaded = None
            read_rev = statics[0].rev if statics and statics[0].rev is not None else None
            state, windows = self.store.decode_load(res.post_id, statics, rows)
            before = {k: m.present for k, m in state.members.items()}
            changed_members, changed_windows, notes = apply_chunk(state, windows, chunk)
            if changed_members or changed_windows:
                batch = self.store.save_batch(state, read_rev, changed_members, changed_windows)
                done = await aexec(self.session, batch)
                if not (done and done[0].applied):
                    continue
            res.totals = state.totals
            for k in keys:
                res.initial.setdefault(k, before.get(k, False))
            res.changed.update(changed_members)
            res.members.update({k: state.members[k] for k in keys if k in state.members})
            res.windows.update({int(k[2:]): windows.get(int(k[2:]), Counts())
                                for k in keys if k.startswith("w:")})
            res.notifications.extend(notes)
            return
        raise ConcurrentWriter(f"post {res.post_id}: revision changed {self.settings.engagement_cas_retries} times")

    async def _downstream(self, results: list[PostOutcome]) -> None:
        """Affinity, hot counters, derived counts and notifications (see the module docstring)."""
        rows: list[tuple[Any, tuple[Any, ...]]] = []
        delta: dict[tuple[str, str], int] = {}
        recount: set[tuple[str, str]] = set()
        for r in results:
            for key, m in r.members.items():
                if key.startswith("w:") or not m.user or m.user == r.author:
                    continue
                pair = (m.user, r.author)
                rows.append((self.store.i_aff if m.present else self.store.d_aff,
                             (m.user, r.author, r.post_id, key)))
                if key in r.changed:
                    delta[pair] = delta.get(pair, 0) + int(m.present) - int(r.initial.get(key, False))
                else:
                    recount.add(pair)

        async def known_fields(moved: list[tuple[str, str]]) -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for reader, author in moved:
                pipe.hexists(affinity_key(reader), author)
            return await pipe.execute() if moved else []

        async def affinity_and_hot() -> None:
            moved = [p for p, d in delta.items() if d and p not in recount]
            known, *_ = await asyncio.gather(known_fields(moved), *(
                aexec(self.session, self.store.affinity_batch(rows[i:i + AFFINITY_BATCH]))
                for i in range(0, len(rows), AFFINITY_BATCH)))
            absolute = sorted(recount | {p for p, k in zip(moved, known) if not k})
            counts = await asyncio.gather(*(aexec(self.session, self.store.q_aff, p) for p in absolute))
            pipe = self.redis.pipeline(transaction=False)
            for r in results:
                write_hot_counts(pipe, r.post_id, r.totals, REACTION_KINDS)
            for (reader, author), found in zip(absolute, counts):
                pipe.hset(affinity_key(reader), author, int(found[0][0]))
            for (reader, author), k in zip(moved, known):
                if k:
                    pipe.hincrby(affinity_key(reader), author, delta[(reader, author)])
            await pipe.execute()

        async def emits() -> None:  # per post: windows first, totals last (compacted by post)
            counts: list[tuple[int, dict[str, Any]]] = []
            notes: list[Notify] = []
            seen: set[str] = set()
            for r in results:
                counts.extend((r.post_id, counts_value(r.post_id, r.windows[ws], ws, r.last_event))
                              for ws in sorted(r.windows))
                counts.append((r.post_id, counts_value(r.post_id, r.totals, None, r.last_event)))
                for note in r.notifications:
                    if note.notification_id not in seen:  # a replay within the batch re-notifies
                        seen.add(note.notification_id)
                        notes.append(note)
            if self.emit_batch is not None:
                await self.emit_batch(counts, notes)
                return
            pending = [await self.emit_counts(pid, value) for pid, value in counts]
            pending += [await self.emit_notification(note) for note in notes]
            await asyncio.gather(*(p for p in pending if p is not None))

        await asyncio.gather(affinity_and_hot(), emits())


def apply_chunk(state: PostState, windows: dict[int, Counts], chunk: Sequence[Engagement]
                ) -> tuple[dict[str, Member], dict[int, Counts], list[Notify]]:
    """Apply events to ``state``/``windows`` in place; the changed members, windows, notifications."""
    members: dict[str, Member] = {}
    touched: set[int] = set()
    notes: list[Notify] = []
    for e in chunk:
        out = apply(state, e.name, e.value)
        if out.changed and out.member is not None:
            members[out.key] = out.member
        if not out.delta.is_zero():
            windows[out.window_start] = windows.get(out.window_start, Counts()) + out.delta
            touched.add(out.window_start)
        notes.extend(out.notifications)
    return members, {ws: windows[ws] for ws in touched}, notes
