"""The trending PyFlink job: Kafka raw bytes -> Python decode -> Flink SQL HOP windows -> Python rank -> sinks.

Decoding is a Python step (the project's fastavro :class:`~streams.serde.Serde`), not Flink's
``avro-confluent`` format: posts.v1 and engagements.v1 carry several record types per topic
(TopicRecordNameStrategy) and ``avro-confluent`` resolves every record into one reader schema,
which cannot tell ``Liked`` from ``Unliked`` (identical fields) nor read a ``PostCreated`` and
a ``Shared`` through one row type. The Kafka source reads ``raw`` bytes plus topic/partition/
offset metadata (so poison and too-late records are dead-lettered with their source offset).

Python touches each event once (decode -> one compact row per contribution) and each window once:

1. ``decode`` (Python, stateless): bytes -> ``(kind, item, ts, weight, cnt, topic, partition, offset, eid, post)``,
   then the bounded-out-of-orderness watermark, **per Kafka partition**: each source topic's
   assigner (:class:`PartitionEventTime`) tracks each partition's greatest event time and hands
   Flink's generator their minimum over the partitions that are not idle
   (:class:`logic.PartitionClock`), so the topic's watermark is the minimum of per-partition
   ``max_ts - ooo - 1``; the merged stream's watermark is the minimum over topics. No partition's
   (or topic's) events are made late by another one read ahead of it (a replay from offset 0).
   The stream record's timestamp is therefore that clock, not the event's time: every step after
   decode takes event time from the row's ``ts``.
   ``dedup`` (Python, keyed by event id and item) drops re-deliveries: Kafka delivers at least
   once and retries reuse event ids, so the same event can arrive twice; the first one passes and
   its id is remembered until its windows are past their allowed lateness
   (:func:`logic.dedup_horizon_ms`, an event-time timer clears it).
   ``moderate`` (Python, keyed by post id): the deduplicated hashtag and engagement rows and
   moderation-verdicts.v1's verdicts; a verdict that hides a post (LIMIT/REMOVE in force)
   retracts its hashtags (at the post's event time) and its engagements (per slide bucket, at the
   bucket's start), one that shows it again re-adds them; engagements of a hidden post are held
   back; a visibility marker ahead of the corrections tells ``rank`` to leave the post out
   (:class:`Moderate`).
2. per window spec, Flink SQL (JVM): ``HOP`` window TVF grouped by ``(kind, item)`` (sliced: each event
   updates one slide-sized slice, not size/slide windows) cascaded into one row per ``(kind, window)``
   holding ``ARRAY_AGG`` of its items' ``(item, count, weight)``. Emitted when the watermark passes the window end.
3. late path: SQL keeps rows at or behind ``CURRENT_WATERMARK`` (the same watermark the window
   aggregation sees, since both read one stream); Python turns each into per-window deltas for windows
   that fired but are within allowed lateness, and dead-letters + counts the ones too late for all.
   (The window TVF itself counts such a row in its windows that have not fired yet.)
4. ``rank`` (Python, keyed by ``(label, kind)``): merges window rows and late deltas, scores against
   each item's own history (viral z-score / observed-vs-expected), top-K, on an event-time timer at
   the window end; state is map state keyed by window end (a firing reads its window and its
   baseline windows, not every item's history); posts a visibility marker hides are left out.
5. ``publish`` (Python): trending.v1, Redis, Cassandra — one flush per emission.
"""

from __future__ import annotations

import calendar
import datetime as dt
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from pyflink.common import Duration, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream, FlatMapFunction, KeyedProcessFunction, MapFunction
from pyflink.datastream.connectors import Sink
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes, Schema, StreamTableEnvironment

from core.settings import Settings
from streams.catalog import DEAD_LETTERS, ENGAGEMENTS, MODERATION_VERDICTS, POSTS, TRENDING
from topologies.trending import logic, moderation
from topologies.trending.logic import (
    DEFAULT_WEIGHTS,
    DEFAULT_WINDOW,
    Contribution,
    ViralPolicy,
    Window,
    WindowSpec,
)

_FIELDS = ["kind", "item", "ts", "weight", "cnt", "topic", "partition", "offset", "eid", "post"]


def contrib_type() -> Any:
    """Fresh row type of a contribution (fresh: a used one holds Java objects that cannot be pickled)."""
    return Types.ROW_NAMED(_FIELDS, [Types.STRING(), Types.STRING(), Types.LONG(), Types.DOUBLE(), Types.LONG(),
                                     Types.STRING(), Types.INT(), Types.LONG(), Types.STRING(), Types.LONG()])


@dataclass(frozen=True)
class TrendingConfig:
    """What the job computes and where it reads and writes."""

    windows: tuple[WindowSpec, ...] = (DEFAULT_WINDOW,)
    k: int = 20
    policy: ViralPolicy = ViralPolicy()  # noqa: RUF009 (frozen)
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    source_topics: tuple[str, ...] = (POSTS.name, ENGAGEMENTS.name)
    # moderation: verdicts (the effective decision, the moderator's part winning) on posts retract a
    # hidden post's hashtags and engagements and re-add them when it is shown again (``Moderate``),
    # when ``post_topic`` is one of ``source_topics``; None (or another post_topic): hidden posts count
    verdict_topic: str | None = MODERATION_VERDICTS.name
    post_topic: str = POSTS.name
    trending_topic: str = TRENDING.name
    late_topic: str = DEAD_LETTERS.name
    group_id: str = "trending"
    offset_reset: str = "earliest"  # where a new group starts
    bounded: bool = False
    cassandra: bool = True
    # a PostCreated whose author, or an engagement whose user, was not registered by occurred_at +
    # grace adds nothing and is dead-lettered (the fan-out's and engagement worker's rule, issue 14
    # item 5); ``prove_authors``: absence proven by the users topology's progress (live), else by
    # the clock alone (tests whose stack runs no users topology)
    prove_authors: bool = True
    # a source partition (or topic) with nothing new for this long stops holding back the watermark
    # (each partition has its own, a topic's is their minimum and the job's the topics' minimum: a
    # quiet or empty partition would stall every window without it); None: never idle
    idleness_ms: int | None = 30_000


#: Serializes the first heavy imports: in ``python.execution-mode: thread`` every operator opens in
#: its own thread of one interpreter, and concurrent first imports of confluent_kafka fail.
_IMPORTS = threading.Lock()


def _publisher(settings: Settings, config: TrendingConfig) -> Any:
    with _IMPORTS:
        from topologies.trending.sinks import Publisher

    return Publisher(settings, trending_topic=config.trending_topic, late_topic=config.late_topic,
                     cassandra=config.cassandra)


def epoch_ms(value: Any) -> int:
    """Epoch milliseconds of a SQL TIMESTAMP (naive UTC datetime) or TIMESTAMP_LTZ (``Instant``) value."""
    if hasattr(value, "to_epoch_milli"):
        return int(value.to_epoch_milli())
    if not isinstance(value, dt.datetime):  # thread mode hands over java.time objects
        if hasattr(value, "toEpochMilli"):
            return int(value.toEpochMilli())
        value = dt.datetime.fromisoformat(str(value))
    return calendar.timegm(value.utctimetuple()) * 1000 + value.microsecond // 1000


class Decode(FlatMapFunction):
    """Confluent-Avro bytes -> contribution rows; undecodable records go to dead letters."""

    def __init__(self, settings: Settings, config: TrendingConfig) -> None:
        self.settings, self.config = settings, config

    def open(self, runtime_context: Any) -> None:
        with _IMPORTS:
            from streams.serde import Serde

        self.serde = Serde(self.settings.registry_url)
        self.publisher: Any = None
        with _IMPORTS:
            from topologies.fanout.runtime import Stores
            from topologies.graph.app import UserCheck, UsersProgress, registered_lookup

        st = Stores(self.settings)
        self.authors = UserCheck(registered_lookup(st), int(self.settings.graph_user_grace_s * 1000),
                                 named=lambda rec: logic.contributor(rec.name, rec.value),
                                 progress=UsersProgress(st) if self.config.prove_authors else None)

    def _refuse(self, topic: str, partition: int, offset: int, data: bytes, exc: Exception) -> None:
        if self.publisher is None:
            self.publisher = _publisher(self.settings, self.config)
        self.publisher.poison(topic, partition, offset, data, exc)

    def _ghost(self, topic: str, partition: int, offset: int, name: str, value: dict) -> Exception | None:
        """UnknownAuthor (a post) or UnknownUser (an engagement) if the record's user never
        registered in time (:func:`logic.contributor`), else None."""
        if not logic.contributor(name, value):
            return None
        from topologies.fanout.logic import UnknownAuthor
        from topologies.faust_runtime import SourceRecord
        from topologies.graph.logic import UnknownUser

        missing = self.authors.unknown([SourceRecord(topic, partition, offset, None, name, value, 0)])[0]
        if not missing:
            return None
        error = UnknownAuthor if name == "PostCreated" else UnknownUser
        return error(f"{name}: user {', '.join(sorted(missing))} never registered (not counted in trending)")

    def flat_map(self, row: Any) -> Iterable[tuple]:
        from pyflink.common import Row

        from streams.errors import DecodeError

        topic, partition, offset, data = row[0], row[1], row[2], row[3]
        try:
            decoded = self.serde.decode(data)
            found = logic.contributions(decoded.name, decoded.value, self.config.weights)
            verdict = moderation.verdict_contribution(decoded.name, decoded.value) if not found else None
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            self._refuse(topic, partition, offset, data, exc)
            return
        ghost = self._ghost(topic, partition, offset, decoded.name, decoded.value) if found else None
        if ghost is not None:
            self._refuse(topic, partition, offset, data, ghost)
            return
        eid = str(decoded.value.get("event_id") or f"{topic}/{partition}/{offset}")
        post = decoded.value.get("post_id")
        for c in found if verdict is None else [verdict]:
            yield Row(c.kind, c.item, c.ts, c.weight, c.count, topic, partition, offset, eid,
                      None if post is None else int(post))


class PartitionEventTime(TimestampAssigner):
    """One source topic's watermark input: its :class:`logic.PartitionClock`, not the row's own time.

    Event time is the envelope's ``occurred_at`` (the row's ``ts``). PyFlink runs a Python
    timestamp assigner as an operator after the source (``from_source`` would take only the Java
    strategy, i.e. the Kafka record timestamp), so Flink cannot keep a watermark per split here;
    this assigner keeps each partition's greatest ``ts`` and returns the minimum over the
    partitions that are not idle. Flink's bounded-out-of-orderness generator over these values
    emits ``min_p(max_p) - ooo - 1``: the minimum of per-partition watermarks. ``partitions`` (the
    topic's partitions at build time) hold the clock back until their first record or until idle
    (``idleness_ms`` without a record, wall clock).
    """

    def __init__(self, partitions: int, idleness_ms: int | None) -> None:
        self.partitions, self.idleness_ms = partitions, idleness_ms
        self.clock: logic.PartitionClock | None = None

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        now = time.monotonic() * 1000.0
        if self.clock is None:  # at the first record: the idle timers start with the reading
            self.clock = logic.PartitionClock(self.partitions, self.idleness_ms, now)
        return self.clock.observe(value[6], value[2], now)


class Dedup(KeyedProcessFunction):
    """Keyed by :func:`logic.dedup_key`: pass a contribution the first time, drop its re-deliveries."""

    def __init__(self, horizon_ms: int) -> None:
        self.horizon_ms = horizon_ms

    def open(self, runtime_context: Any) -> None:
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen", Types.BOOLEAN()))

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        if self.seen.value():
            return
        self.seen.update(True)
        ctx.timer_service().register_event_time_timer(value[2] + self.horizon_ms)  # event time: the row's ts
        yield value

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
        self.seen.clear()
        return ()


class Moderate(KeyedProcessFunction):
    """Keyed by post id, after dedup: a post's hashtag rows pass through, its engagement rows pass
    while it is visible (and are summed per slide bucket, :func:`moderation.on_engagement`); a verdict
    that flips the post's visibility retracts (hidden) or re-adds (shown again) its hashtags at the
    post's event time and its engagement buckets at their start (:func:`moderation.on_verdict`), after a
    visibility marker for the rank step.

    A correction is an ordinary contribution row with its own event id per flip and bucket, so it
    goes through the window aggregation (windows not fired yet) and the late path (fired windows
    within allowed lateness: re-emitted). The post's state is kept until every window of it (and of
    the latest verdict) is past its allowed lateness, then an event-time timer clears it; a hidden
    post keeps its visibility (engagements can come any time later) and drops its buckets.
    """

    def __init__(self, specs: tuple[WindowSpec, ...]) -> None:
        self.specs = specs
        self.horizon_ms = moderation.visibility_horizon_ms(specs)
        self.bucket_ms = moderation.bucket_ms(specs)

    def open(self, runtime_context: Any) -> None:
        self.post = runtime_context.get_state(ValueStateDescriptor("visibility", Types.PICKLED_BYTE_ARRAY()))
        self.until = runtime_context.get_state(ValueStateDescriptor("until", Types.LONG()))

    def process_element(self, value: Any, ctx: Any) -> Iterable[Any]:
        from pyflink.common import Row

        st = self.post.value() or moderation.PostVisibility()
        if value[0] == logic.MODERATION:
            out = moderation.on_verdict(st, value[3] > 0, value[2])
        elif value[0] == logic.POSTS:
            out, n = [], len(st.buckets)
            if moderation.on_engagement(st, value[1], value[2], value[4], value[3], self.bucket_ms):
                yield value
            if len(st.buckets) > n:  # a new bucket: drop the ones no window takes corrections for
                moderation.prune_buckets(st, self.specs, ctx.timer_service().current_watermark())
        else:
            out = moderation.on_post_hashtag(st, value[1], value[2], value[8])
            yield value
        self.post.update(st)
        ts = value[2]  # event time (the record's timestamp is its topic's partition clock)
        until = max(self.until.value() or ts, ts + self.horizon_ms)
        if until != self.until.value():
            self.until.update(until)
            ctx.timer_service().register_event_time_timer(until)
        for c, eid in out:
            yield Row(c.kind, c.item, c.ts, c.weight, c.count, value[5], value[6], value[7], eid, value[9])

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[Any]:
        if timestamp >= (self.until.value() or 0):
            st = self.post.value()
            if st is not None and st.hidden:  # its later engagements must still be held back
                st.buckets = {}
                self.post.update(st)
            else:
                self.post.clear()
            self.until.clear()
        return ()


class LateSplit(FlatMapFunction):
    """Rows behind the watermark: per-window deltas for fired-but-live windows; too late -> dead letters."""

    def __init__(self, settings: Settings, config: TrendingConfig) -> None:
        self.settings, self.config = settings, config

    def open(self, runtime_context: Any) -> None:
        self.publisher: Any = None

    def flat_map(self, v: Any) -> Iterable[tuple]:
        kind, item, ts, weight, cnt, topic, partition, offset, eid, wm = v
        watermark = epoch_ms(wm)
        if kind == logic.MODERATION:  # a visibility marker: ahead of its post's corrections, in order
            for spec in self.config.windows:
                yield (spec.label, logic.POSTS, None, (item, weight > 0, watermark))
            return
        for spec in self.config.windows:
            if spec.classify(ts, watermark) == "too_late":
                if moderation.is_correction(eid):  # a moderation correction for closed windows: nothing to fix
                    continue
                if self.publisher is None:
                    self.publisher = _publisher(self.settings, self.config)
                self.publisher.late(Contribution(kind, item, ts, weight, cnt), topic, partition, offset,
                                    spec.label, watermark)
                continue
            for w in logic.late_updates(spec, ts, watermark):
                yield (spec.label, kind, w.end, [(item, cnt, weight)])


class _MapStateView(MutableMapping):
    """A PyFlink ``MapState`` seen as the ``MutableMapping`` that :class:`logic.RankState` expects."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def __getitem__(self, key: int) -> Any:
        value = self.state.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __setitem__(self, key: int, value: Any) -> None:
        self.state.put(key, value)

    def __delitem__(self, key: int) -> None:
        self.state.remove(key)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.state.keys()))

    def __len__(self) -> int:
        return sum(1 for _ in self.state.keys())  # noqa: SIM118 (a MapState)


class Rank(KeyedProcessFunction):
    """Per ``(label, kind)``: collect window rows and late deltas, score, top-K at the window's end.

    A visibility marker (``end`` None) from the moderation step hides a post from the posts lists
    fired until its corrections are all in (:func:`logic.mark_visibility`)."""

    def __init__(self, specs: Mapping[str, WindowSpec], policy: ViralPolicy, k: int) -> None:
        self.specs, self.policy, self.k = dict(specs), policy, k
        self.horizon_ms = moderation.visibility_horizon_ms(self.specs.values())

    def open(self, runtime_context: Any) -> None:
        def view(name: str, key: Any = None) -> _MapStateView:
            return _MapStateView(runtime_context.get_map_state(
                MapStateDescriptor(name, key or Types.LONG(), Types.PICKLED_BYTE_ARRAY())))

        self.st = logic.RankState(windows=view("windows"), history=view("history"),
                                  hidden=view("hidden", Types.STRING()))

    def _fire(self, label: str, kind: str, end: int, wm: int) -> list[logic.TopK]:
        spec = self.specs[label]
        out = logic.fire(self.st, kind, Window(end - spec.size_ms, end), spec, self.policy, self.k)
        logic.expire(self.st, spec, self.policy, wm)
        return out

    def process_element(self, value: Any, ctx: Any) -> Iterable[list[logic.TopK]]:
        label, kind, end, items = value
        if end is None:
            post, hides, watermark = items
            logic.mark_visibility(self.st, post, hides, watermark, self.horizon_ms)
            return
        logic.merge_window(self.st, end, items)
        wm = ctx.timer_service().current_watermark()
        if wm >= end - 1:  # a late delta: the window already fired here
            yield self._fire(label, kind, end, wm)
        else:
            ctx.timer_service().register_event_time_timer(end - 1)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[list[logic.TopK]]:
        label, kind = ctx.get_current_key()
        if timestamp + 1 in self.st.windows:
            yield self._fire(label, kind, timestamp + 1, timestamp)


class Publish(MapFunction):
    """Write one firing's ranked lists to trending.v1, Redis and Cassandra (durable before returning)."""

    def __init__(self, settings: Settings, config: TrendingConfig) -> None:
        self.settings, self.config = settings, config

    def open(self, runtime_context: Any) -> None:
        self.publisher = _publisher(self.settings, self.config)

    def map(self, topks: Any) -> int:
        return self.publisher.publish_many(topks)


def _discard(ds: DataStream, name: str) -> None:
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    ds.sink_to(Sink(jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())).name(name)


def source_sql(settings: Settings, config: TrendingConfig, table: str = "trending_source",
               topics: Iterable[str] | None = None) -> str:
    """DDL of the raw-bytes Kafka source of ``topics`` (default: all) with topic/partition/offset metadata."""
    bounded = ", 'scan.bounded.mode' = 'latest-offset'" if config.bounded else ""
    names = ";".join(config.source_topics if topics is None else topics)
    return f"""
        CREATE TEMPORARY TABLE {table} (
          `topic` STRING METADATA VIRTUAL,
          `partition` INT METADATA VIRTUAL,
          `offset` BIGINT METADATA VIRTUAL,
          `data` BYTES
        ) WITH (
          'connector' = 'kafka', 'topic' = '{names}',
          'properties.bootstrap.servers' = '{settings.kafka_bootstrap}',
          'properties.group.id' = '{config.group_id}',
          'properties.auto.offset.reset' = '{config.offset_reset}',
          'scan.startup.mode' = 'group-offsets', 'format' = 'raw'{bounded})"""


def partition_count(settings: Settings, topic: str, timeout_s: float = 10.0) -> int:
    """How many partitions ``topic`` has now (0 if it does not exist or Kafka does not answer)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        meta = AdminClient({"bootstrap.servers": settings.kafka_bootstrap}).list_topics(topic, timeout=timeout_s)
    except KafkaException:
        return 0
    found = meta.topics.get(topic)
    return 0 if found is None or found.error is not None else len(found.partitions)


def timed_source(t_env: StreamTableEnvironment, settings: Settings, config: TrendingConfig, index: int,
                 topic: str) -> DataStream:
    """One topic's contributions with a watermark per partition (:class:`PartitionEventTime`).

    One source per topic, and within it one watermark per partition: a union's watermark is the
    minimum of its inputs', and the topic's is the minimum over its partitions, so neither a topic
    nor a partition read ahead of another (a replay from offset 0, a restart catching up, one
    fetch returning first) can push the other's on-time events behind the watermark. A partition
    with nothing new for ``config.idleness_ms`` is idle and stops holding the topic's watermark back
    until its next record; a topic with nothing new for as long stops holding the others back. The
    topic's partitions are looked up now: each holds the watermark back until its first record (or
    until idle); one added later counts from its first record.
    """
    table = f"trending_source_{index}"
    t_env.execute_sql(source_sql(settings, config, table, (topic,)))
    raw = t_env.to_data_stream(t_env.sql_query(f"SELECT `topic`, `partition`, `offset`, `data` FROM {table}"))
    wm = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(max(s.out_of_orderness_ms for s in config.windows)))
    if config.idleness_ms:
        wm = wm.with_idleness(Duration.of_millis(config.idleness_ms))
    clock = PartitionEventTime(partition_count(settings, topic), config.idleness_ms)
    return (raw.flat_map(Decode(settings, config), output_type=contrib_type()).name(f"decode-{topic}")
            .uid(f"decode-{topic}")
            .assign_timestamps_and_watermarks(wm.with_timestamp_assigner(clock))
            .name(f"event-time-{topic}").uid(f"event-time-{topic}"))


def interval(ms: int) -> str:
    """A SQL interval literal of ``ms`` milliseconds."""
    for unit, n in (("DAY", 86_400_000), ("HOUR", 3_600_000), ("MINUTE", 60_000), ("SECOND", 1_000)):
        if ms % n == 0:
            return f"INTERVAL '{ms // n}' {unit}({len(str(ms // n))})"
    return f"INTERVAL '{ms / 1000:.3f}' SECOND({len(str(ms // 1000))}, 3)"


def window_sql(spec: WindowSpec, view: str = "trending_counted") -> str:
    """One row per ``(kind, window)`` with its items' ``(item, count, weight)``, when the window fires."""
    return f"""
        SELECT kind, window_end,
               ARRAY_AGG(CONCAT_WS(CHR(31), item, CAST(n AS STRING), CAST(w AS STRING))) AS items FROM (
          SELECT window_start, window_end, window_time, kind, item, SUM(cnt) AS n, SUM(weight) AS w
          FROM TABLE(HOP(TABLE {view}, DESCRIPTOR(rt), {interval(spec.slide_ms)}, {interval(spec.size_ms)}))
          GROUP BY window_start, window_end, window_time, kind, item)
        GROUP BY window_start, window_end, kind"""


def parse_items(items: Iterable[str]) -> list[tuple[str, int, float]]:
    """``(item, count, weight)`` from :func:`window_sql`'s ``item US count US weight`` strings.

    Strings, not ``ROW``s: thread mode hands an array of rows over as one reused Java row.
    """
    out = []
    for text in items:
        item, n, w = text.rsplit("\x1f", 2)
        out.append((item, int(n), float(w)))
    return out


def late_sql(view: str = "trending_contrib") -> str:
    """Rows at or behind the watermark the window aggregations see (candidates for late handling)."""
    return f"""
        SELECT kind, item, ts, weight, cnt, `topic`, `partition`, `offset`, eid, CURRENT_WATERMARK(rt) AS wm
        FROM {view} WHERE CURRENT_WATERMARK(rt) IS NOT NULL AND rt <= CURRENT_WATERMARK(rt)"""


def build(t_env: StreamTableEnvironment, settings: Settings, config: TrendingConfig) -> None:
    """Add the trending pipeline to ``t_env`` (run it with its environment's ``execute``)."""
    assert config.windows, "at least one window spec is required"
    t_env.get_config().set("table.local-time-zone", "UTC")
    merged: DataStream | None = None
    for index, topic in enumerate(config.source_topics):
        timed = timed_source(t_env, settings, config, index, topic)
        merged = timed if merged is None else merged.union(timed)
    assert merged is not None, "at least one source topic is required"
    events = (merged.key_by(lambda r: logic.dedup_key(r[8], r[0], r[1]), key_type=Types.STRING())
              .process(Dedup(logic.dedup_horizon_ms(config.windows)), output_type=contrib_type())
              .name("dedup").uid("dedup"))
    if config.verdict_topic and config.post_topic in config.source_topics:
        # after dedup: a post's engagement aggregates must hold each engagement once
        verdicts = timed_source(t_env, settings, config, len(config.source_topics), config.verdict_topic)
        events = (events.union(verdicts).key_by(lambda r: r[9], key_type=Types.LONG())
                  .process(Moderate(tuple(config.windows)), output_type=contrib_type())
                  .name("moderate").uid("moderate"))
    schema = Schema.new_builder()
    for name, dtype in zip(_FIELDS, (DataTypes.STRING(), DataTypes.STRING(), DataTypes.BIGINT(), DataTypes.DOUBLE(),
                                     DataTypes.BIGINT(), DataTypes.STRING(), DataTypes.INT(), DataTypes.BIGINT(),
                                     DataTypes.STRING(), DataTypes.BIGINT())):
        schema = schema.column(name, dtype)
    # event time is the row's ``ts``, not the stream record's timestamp (a source row's is its topic's
    # partition clock, PartitionEventTime): a moderation correction travels with its verdict's
    # timestamp (it holds no watermark back anyway: watermarks are made at the sources) but counts at
    # its post's time
    schema = schema.column_by_expression("rt", "TO_TIMESTAMP_LTZ(ts, 3)").watermark("rt", "SOURCE_WATERMARK()")
    t_env.create_temporary_view("trending_contrib", t_env.from_data_stream(events, schema.build()))
    # visibility markers take the late path only (they are at event time 0, behind any watermark)
    t_env.create_temporary_view("trending_counted", t_env.sql_query(
        f"SELECT * FROM trending_contrib WHERE kind <> '{logic.MODERATION}'"))

    ranked_in: DataStream | None = None
    for spec in config.windows:
        label = spec.label
        rows = t_env.to_data_stream(t_env.sql_query(window_sql(spec))).map(
            lambda r, label=label: (label, r[0], epoch_ms(r[1]), parse_items(r[2])),
            output_type=Types.PICKLED_BYTE_ARRAY()).name(f"windows-{label}").uid(f"windows-{label}")
        ranked_in = rows if ranked_in is None else ranked_in.union(rows)
    late = (t_env.to_data_stream(t_env.sql_query(late_sql()))
            .flat_map(LateSplit(settings, config), output_type=Types.PICKLED_BYTE_ARRAY()).name("late").uid("late"))
    ranked = (ranked_in.union(late)
              .key_by(lambda v: (v[0], v[1]), key_type=Types.TUPLE([Types.STRING(), Types.STRING()]))
              .process(Rank({s.label: s for s in config.windows}, config.policy, config.k),
                       output_type=Types.PICKLED_BYTE_ARRAY())
              .name("top-k").uid("top-k"))
    _discard(ranked.map(Publish(settings, config), output_type=Types.INT()).name("publish").uid("publish"),
             "published")
