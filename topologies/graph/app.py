"""Social-graph worker: graph.v1 -> graph sets (Redis + Cassandra), negative sets, back-fill, purge."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import faust

from core.feed import TimelineWrite
from core.settings import Settings
from stores import graph, progress
from stores import redis as redis_store
from stores import timelines as tls
from stores import users as user_store
from streams.catalog import GRAPH, USERS
from streams.errors import PoisonRecord
from streams.serde import Serde
from topologies.fanout.logic import plan_backfill, plan_purge
from topologies.fanout.runtime import (
    Emit,
    Process,
    Results,
    Stores,
    occurred_ms,
    source_of,
    timeline_app,
)
from topologies.faust_runtime import (
    SourceRecord,
    run_worker,
)
from topologies.graph.logic import (
    BACKFILL,
    GRAPH_RECORDS,
    PURGE,
    GraphBatch,
    UnknownGraphEvent,
    named_users,
    pair_key,
)

# user ids -> registration time (epoch ms) of those registered; unknown ids are absent
Lookup = Callable[[list[str]], Mapping[str, int]]

log = logging.getLogger(__name__)
BATCH_WITHIN_S = 0.05  # as fan-out's: with a backlog Faust hands a stream a few records per 5 ms


class UserCheck:
    """Which users a graph event names were not registered in time (issue 14 item 6).

    Rule, the same live and in a replay: an event that occurred at ``T`` may name user ``u`` iff
    ``u``'s UserRegistered occurred no later than ``T + grace``. ``users.v1`` is not co-partitioned
    with ``graph.v1`` (a sign-up and a follow a millisecond later can be applied in either order),
    so live the worker looks the users up in the users store and, for those missing, polls again
    until they appear or the wall clock passes ``T + grace``. An event older than its grace costs
    one lookup. Registered users are remembered (no event unregisters one).

    With ``progress`` (live workers), "not registered" must then be *proven* by the users
    topology's progress, not assumed from the clock: the users.v1 end offsets are snapshotted once
    the clock has passed ``T + grace`` (so at ``max(now, T + grace)``), and the check waits, with
    no wall-clock bound, until the users topology's progress marks have passed them
    (:func:`users_caught_up`), looking the users up again meanwhile. While the users topology is
    down the partition waits: latency, never a dropped event. Without ``progress`` (replay, whose
    lookup is the whole users.v1 log) the clock alone decides.
    """

    def __init__(self, lookup: Lookup, grace_ms: int, *, now_ms: Callable[[], int] | None = None,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.05,
                 named: Callable[[SourceRecord], Iterable[str]] | None = None,
                 progress: UsersProgress | None = None) -> None:
        self.lookup, self.grace_ms, self.sleep, self.poll_s = lookup, grace_ms, sleep, poll_s
        self.progress = progress
        self.named = named or (lambda rec: named_users(rec.name, rec.value))  # the users a record names
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.registered: dict[str, int] = {}

    def _unseen(self, ids: Iterable[str]) -> set[str]:
        """Those of ``ids`` not known registered (a lookup per id: never a copy of the cache)."""
        return {u for u in ids if u not in self.registered}

    def _find(self, ids: Iterable[str]) -> None:
        ids = sorted(self._unseen(ids))
        if ids:
            self.registered.update(self.lookup(ids))
            if len(self.registered) > 1_000_000:  # a cache, not the truth: start again
                self.registered.clear()

    def unknown(self, recs: list[SourceRecord]) -> list[set[str]]:
        """Per record, the users it names that were not registered by its ``occurred_at + grace``."""
        named = [(set(self.named(rec)), occurred_ms(rec.value)) for rec in recs]
        self._find(u for users, _ in named for u in users)
        missing = [(self._unseen(users), at) for users, at in named]
        if any(m for m, _ in missing):
            deadline = min(self.now_ms() + self.grace_ms, max(at + self.grace_ms for m, at in missing if m))
            while any(self._unseen(m) for m, _ in missing) and self.now_ms() < deadline:
                self.sleep(self.poll_s)
                self._find(u for m, _ in missing for u in m)
            if self.progress is not None and any(self._unseen(m) for m, _ in missing):
                self._until_users_applied([u for m, _ in missing for u in m])
        return [{u for u in users if self.registered.get(u, at + self.grace_ms + 1) > at + self.grace_ms}
                for users, at in named]


    def _until_users_applied(self, ids: list[str]) -> None:
        """Wait until ``ids`` are found or the users topology applied users.v1 up to its end offsets
        as of now (the clock is past every ``T + grace`` here); no wall-clock bound."""
        assert self.progress is not None
        ends, waited, t0 = self.progress.ends(), False, time.monotonic()
        while True:
            done = users_caught_up(ends, self.progress.applied())  # before the lookup: it sees all
            self._find(ids)
            if done or not self._unseen(ids):
                break
            if not waited and time.monotonic() - t0 > 5:
                waited = True
                log.warning("waiting for the users topology to apply users.v1 up to %s before refusing "
                            "events naming %s (is it running?)", dict(ends), sorted(self._unseen(ids)))
            self.sleep(self.poll_s)


Offsets = Mapping[tuple[str, int], int]


def note_registrations(recs: Iterable[SourceRecord], registered: dict[str, int]) -> None:
    """Add the UserRegistered records among ``recs`` to ``registered`` (user -> earliest occurred_at)."""
    from core.clock import millis

    for r in recs:
        if r.name == "UserRegistered":
            at = millis(r.value["occurred_at"])
            registered[r.value["user_id"]] = min(at, registered.get(r.value["user_id"], at))


def log_user_check(settings: Settings, registered: dict[str, int],
                   named: Callable[[SourceRecord], Iterable[str]] | None = None) -> UserCheck:
    """:class:`UserCheck` for a replay: users.v1 read from the log (``registered``, filled by
    :func:`note_registrations`) is the whole evidence, so the clock never makes it wait."""
    return UserCheck(lambda ids: {i: registered[i] for i in ids if i in registered},
                     int(settings.graph_user_grace_s * 1000), now_ms=lambda: 2**62, named=named)


def users_caught_up(ends: Offsets, applied: Offsets) -> bool:
    """Whether every users.v1 record below ``ends`` (end offsets) is applied: each partition's
    applied mark (the last applied offset) is at least ``end - 1``."""
    return all(applied.get(tp, -1) >= end - 1 for tp, end in ends.items())


class UsersProgress:
    """users.v1's end offsets (Kafka) and the users topology's applied offsets: its progress marks
    in Redis, else (after a Redis loss) its group's committed offsets in Kafka, minus one."""

    def __init__(self, st: Stores) -> None:
        self.st = st
        self._consumer: Any = None
        self._tps: list[Any] = []

    @property
    def consumer(self) -> Any:
        """A consumer in the users topology's group, for offsets only (it never subscribes)."""
        if self._consumer is None:
            from confluent_kafka import Consumer
            self._consumer = Consumer({"bootstrap.servers": self.st.settings.kafka_bootstrap,
                                       "group.id": progress.group_id(self.st.settings, "users"),
                                       "enable.auto.commit": False})
        return self._consumer

    def _partitions(self) -> list[Any]:
        return self._tps

    def ends(self) -> dict[tuple[str, int], int]:
        """users.v1's end offset per partition, now (its partitions are looked up here)."""
        from confluent_kafka import TopicPartition
        meta = self.consumer.list_topics(USERS.name, timeout=10).topics[USERS.name]
        self._tps = [TopicPartition(USERS.name, p) for p in sorted(meta.partitions)]
        return {(tp.topic, tp.partition): self.consumer.get_watermark_offsets(tp, timeout=10)[1]
                for tp in self._tps}

    def applied(self) -> dict[tuple[str, int], int]:
        """The last users.v1 offset the users topology applied, per partition (-1: none known)."""
        marks = {tp: off for tp, off in progress.marks_of(self.st.r, "users").items() if tp[0] == USERS.name}
        lost = [tp for tp in self._partitions() if (tp.topic, tp.partition) not in marks]
        if lost:
            for tp in self.consumer.committed(lost, timeout=10):
                if tp.offset >= 0:
                    marks[(tp.topic, tp.partition)] = tp.offset - 1
        return marks


def store_lookup(st: Stores) -> Lookup:
    """Registration times from the users store (written by the users topology from users.v1)."""
    def lookup(ids: list[str]) -> dict[str, int]:
        found = user_store.stored_users(st.s, ids)
        return {u: int(row.get("created_at") or 0) for u, row in found.items()}
    return lookup


def registered_lookup(st: Stores) -> Lookup:
    """Registration times: the write API's ``registered:{id}`` marks (read-your-writes, time 0),
    then the users store (written by the users topology from users.v1)."""
    from_store = store_lookup(st)

    def lookup(ids: list[str]) -> dict[str, int]:
        marks = st.r.pipeline(transaction=False)
        for u in ids:
            marks.exists(user_store.k_registered(u))
        found = {u: 0 for u, ok in zip(ids, marks.execute()) if ok}
        rest = [u for u in ids if u not in found]
        return {**found, **(from_store(rest) if rest else {})}
    return lookup


def process_graph(st: Stores, rec: SourceRecord, unknown: Iterable[str] = ()) -> list[TimelineWrite]:
    """Apply one graph.v1 event to the graph stores and reader timelines; return its timeline writes.

    :func:`process_graph_batch` on a batch of one (the replay applies events this way): last
    writer wins per edge (:func:`topologies.graph.logic.edge_clock`), so an event older than the
    last one applied to an edge it names changes nothing. ``unknown``: users it names that are not
    registered (:class:`UserCheck`); then, as for the other refusals, it raises the
    :class:`PoisonRecord` (e.g. :class:`topologies.graph.logic.UnknownUser`) before any side effect.
    """
    [(_, out)] = process_graph_batch(st, [rec], unknown=[set(unknown)], mark=False)
    if isinstance(out, PoisonRecord):
        raise out
    return out


def check_graph_record(rec: SourceRecord) -> None:
    """Raise PoisonRecord for a record that does not belong on graph.v1."""
    if rec.name not in GRAPH_RECORDS:
        raise UnknownGraphEvent(f"unexpected record {rec.name} on {rec.topic}")


def process_graph_batch(st: Stores, recs: list[SourceRecord], users: UserCheck | None = None, *,
                        unknown: list[set[str]] | None = None, mark: bool = True) -> Results:
    """Apply a batch of graph.v1 records as if one after the other; return their writes.

    Reads once, folds in memory, writes once (issue 16):

    1. **Reads**: one Redis round trip when warm (the epoch, which named users' sets are not
       loaded, and the batch's state: every relation between each named pair, both ways, and the
       named users' follower counts, :func:`stores.graph.queue_state`); cold users' sets are
       loaded from Cassandra and the state read again. Then one concurrent Cassandra round: the
       edge clocks of every pair (LOCAL_QUORUM) and the requests Redis does not hold.
    2. **Fold** (:class:`topologies.graph.logic.GraphBatch`, pure): each record in offset order sees
       the effect of the ones before it: refusals, last writer wins per edge, edges, negatives,
       back-fill (celebrity and friendship as of that record) and purge jobs.
    3. **Writes**: the final set memberships and negative sets in one atomic Redis script call,
       which also reads the changed users' set sizes (:func:`stores.graph.apply_sets`); then one Cassandra round (edge rows and ``user_counts``
       from those sizes, grouped by partition, bounded; the author index reads of the back-fills
       and purges, after the edges are in Redis: closes the follow/post race); then the timeline
       writes in one pipeline; then the edge clocks (last: a crash before re-applies the batch,
       idempotently); then the progress marks (``mark``).

    A record refused before any side effect (:class:`PoisonRecord`, e.g. an accept without a pending
    request, or naming a user ``users`` finds unregistered; ``unknown`` gives those users instead)
    comes back with its error instead of writes, for the app to dead-letter.
    """
    r, s, tl = st.r, st.s, st.settings
    if unknown is None:
        unknown = users.unknown(recs) if users is not None else [set() for _ in recs]
    named = [named_users(rec.name, rec.value) for rec in recs]
    people = sorted({u for us in named for u in us})
    pairs = sorted({(min(us), max(us)) for us in named if len(us) == 2})
    p = redis_store.pipeline(r)
    epoch = redis_store.queue_epoch(p)
    state = graph.queue_state(r, p, pairs, people)
    results = iter(p.execute())
    if epoch(results):
        log.warning("redis:epoch was absent: Redis is new or lost its data; graph sets reload lazily")
    cold, sets, followers = state(results)
    if graph.load(r, s, cold):  # a Redis that lost its data: reload, then read again
        p = redis_store.pipeline(r)
        state = graph.queue_state(r, p, pairs, people)
        _, sets, followers = state(iter(p.execute()))
    asks = [(rec.value["from_id"], rec.value["to_id"]) for rec in recs
            if rec.name in ("FriendRequestAccepted", "FriendRequestDeclined")
            and not sets.get(("req", rec.value["to_id"], rec.value["from_id"]))]
    clocks, durable = graph.read_batch(s, [pair_key(*us) for us in named if len(us) == 2], asks)

    batch = GraphBatch(sets, followers, clocks, durable, celebrity_threshold=tl.celebrity_threshold)
    applied = [batch.apply(rec.name, rec.value, occurred_ms(rec.value), missing)
               for rec, missing in zip(recs, unknown)]
    for rec, a in zip(recs, applied):
        if a.stale:
            log.info("graph: ignoring %s %s: an edge it names had a newer event applied",
                     rec.name, rec.value.get("event_id"))

    counts: dict[str, tuple[int, int, int]] = {}
    if batch.changed or batch.negatives:
        ops = [(on, graph.KIND_KEYS[kind](owner), member) for (kind, owner, member), on in batch.changed.items()]
        ops += [(hidden, tls.k_negative(reader), author) for (reader, author), hidden in batch.negatives.items()]
        counts = graph.apply_sets(r, ops, list(batch.counted))
    jobs = [j for a in applied for j in a.jobs]
    need: dict[str, int] = {}
    for j in jobs:
        lim = tl.backfill_limit * 2 if j.kind == BACKFILL else tl.timeline_cap
        need[j.author] = max(need.get(j.author, 0), lim)
    by_limit: dict[int, list[str]] = {}
    for author, lim in need.items():
        by_limit.setdefault(lim, []).append(author)
    reads = [b for lim, authors in sorted(by_limit.items()) for b in graph.index_statements(s, authors, lim)]
    index: dict[str, list[tuple[int, str]]] = {a: [] for a in need}
    for rows in graph.write_batch(s, batch.rows, counts, reads):
        for row in rows:
            index[row.author_id].append((row.post_id, row.visibility))

    out: Results = []
    timelines = tls.TimelineBatch(r, tl.timeline_cap)
    for rec, a in zip(recs, applied):
        if a.error is not None:
            out.append((rec, a.error))
            continue
        writes: list[TimelineWrite] = []
        for j in a.jobs:
            if j.kind == BACKFILL:
                writes += plan_backfill(j.reader, j.author, index[j.author][:tl.backfill_limit * 2], follows=True,
                                        is_friend=j.is_friend, limit=tl.backfill_limit)
            elif j.kind == PURGE:
                writes += plan_purge(j.reader, j.author, [pid for pid, _ in index[j.author][:tl.timeline_cap]])
        if writes:
            timelines.writes(writes, source_of(rec))
        out.append((rec, writes))
    timelines.run()
    graph.stamp_batch(s, batch.stamps)  # last: a crash before this re-applies the batch (idempotent)
    if mark:
        progress.mark(r, "graph", progress.highest((rec.topic, rec.partition, rec.offset) for rec in recs))
    return out


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, process: Process | None = None,
               emit: Emit | None = None) -> faust.App:
    """Build the social-graph Faust app: one batching agent on graph.v1 (batches of up to 500,
    gathered for up to 50 ms: a batch's reads and writes cost a fixed few round trips).

    Group and offset reset come from ``settings`` (:func:`topologies.faust_runtime.create_faust_app`),
    as do the timeline knobs. Test seams: ``serde``, ``broker``, ``process`` (applies a batch to the
    stores, run in a thread; default :func:`process_graph_batch`) and ``emit`` (hands the batch's
    TimelineUpdates to Kafka; default :func:`topologies.fanout.runtime.start_emit`).
    """
    st = Stores(settings)
    users = UserCheck(registered_lookup(st), int(settings.graph_user_grace_s * 1000), progress=UsersProgress(st))
    return timeline_app(settings, "graph", GRAPH, "graph-edges",
                        process=process or (lambda recs: process_graph_batch(st, recs, users)),
                        validate=check_graph_record, app_id=app_id, serde=serde, broker=broker, emit=emit,
                        max_batch=500, within_s=BATCH_WITHIN_S)


def run(settings: Settings) -> None:
    """Run the social-graph worker until interrupted."""
    run_worker(create_app(settings))
