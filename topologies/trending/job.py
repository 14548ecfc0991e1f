"""The trending PyFlink job: Kafka (raw Confluent-Avro bytes) -> decode -> HOP windows -> top-K -> sinks.

Decoding is a Python step (the project's fastavro :class:`~streams.serde.Serde`), not Flink's
``avro-confluent`` format: posts.v1 and engagements.v1 carry several record types per topic
(TopicRecordNameStrategy) and ``avro-confluent`` resolves every record into one reader schema,
which cannot tell ``Liked`` from ``Unliked`` (identical fields) nor read a ``PostCreated`` and
a ``Shared`` through one row type. The Kafka source reads ``raw`` bytes plus topic/partition/
offset metadata (so poison and too-late records are dead-lettered with their source offset).

Per window spec: key by (kind, item) -> ``SlidingEventTimeWindows`` with allowed lateness and a
late side output -> aggregate (logic's triple) + score against the item's history (global
per-key state) -> key by (label, kind, window_end) -> top-K on an event-time timer at the
window's end (re-emitted on late updates) -> publish (Kafka, Redis, Cassandra).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyflink.common import Duration, Time, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import (
    AggregateFunction, DataStream, FlatMapFunction, KeyedProcessFunction, MapFunction, OutputTag,
    ProcessWindowFunction,
)
from pyflink.datastream.connectors import Sink
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor
from pyflink.datastream.window import SlidingEventTimeWindows
from pyflink.table import StreamTableEnvironment

from feedstream.settings import Settings
from streams.catalog import DEAD_LETTERS, ENGAGEMENTS, POSTS, TRENDING
from topologies.trending import logic
from topologies.trending.logic import (
    DEFAULT_WEIGHTS, DEFAULT_WINDOW, Contribution, Scored, ViralPolicy, Window, WindowSpec,
)

# (kind, item, ts, weight, count, source_topic, source_partition, source_offset)
def contrib_type() -> Any:
    """Fresh type info of a contribution (fresh: a used one holds Java objects that cannot be pickled)."""
    return Types.TUPLE([Types.STRING(), Types.STRING(), Types.LONG(), Types.DOUBLE(), Types.LONG(),
                        Types.STRING(), Types.INT(), Types.LONG()])
# (label, kind, item, start, end, count, weight, score, velocity, zscore, viral)
def scored_type() -> Any:
    """Fresh type info of a scored item."""
    return Types.TUPLE([Types.STRING(), Types.STRING(), Types.STRING(), Types.LONG(), Types.LONG(),
                        Types.LONG(), Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(), Types.DOUBLE(),
                        Types.DOUBLE()])


@dataclass(frozen=True)
class TrendingConfig:
    """What the job computes and where it reads and writes."""

    windows: tuple[WindowSpec, ...] = (DEFAULT_WINDOW,)
    k: int = 20
    policy: ViralPolicy = ViralPolicy()
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    source_topics: tuple[str, ...] = (POSTS.name, ENGAGEMENTS.name)
    trending_topic: str = TRENDING.name
    late_topic: str = DEAD_LETTERS.name
    group_id: str = "trending"
    bounded: bool = False
    cassandra: bool = True
    idleness_ms: int | None = None


def _publisher(settings: Settings, config: TrendingConfig) -> Any:
    from topologies.trending.sinks import Publisher

    return Publisher(settings, trending_topic=config.trending_topic, late_topic=config.late_topic,
                     cassandra=config.cassandra)


class Decode(FlatMapFunction):
    """Confluent-Avro bytes -> contributions; undecodable records go to dead letters."""

    def __init__(self, settings: Settings, config: TrendingConfig) -> None:
        self.settings, self.config = settings, config

    def open(self, runtime_context: Any) -> None:
        from streams.serde import Serde

        self.serde = Serde(self.settings.registry_url)
        self.publisher = None

    def flat_map(self, row: Any) -> Iterable[tuple]:
        from streams.errors import DecodeError

        topic, partition, offset, data = row[0], row[1], row[2], row[3]
        try:
            decoded = self.serde.decode(data)
            found = logic.contributions(decoded.name, decoded.value, self.config.weights)
        except (DecodeError, KeyError, TypeError, ValueError) as exc:
            if self.publisher is None:
                self.publisher = _publisher(self.settings, self.config)
            self.publisher.poison(topic, partition, offset, data, exc)
            return
        for c in found:
            yield (c.kind, c.item, c.ts, c.weight, c.count, topic, partition, offset)


class EventTime(TimestampAssigner):
    """Event time is the envelope's ``occurred_at``."""

    def extract_timestamp(self, value: Any, record_timestamp: int) -> int:
        return value[2]


class Aggregate(AggregateFunction):
    """Flink adapter of logic's ``agg_create / agg_add / agg_merge / agg_result``."""

    def create_accumulator(self) -> tuple[int, float]:
        return logic.agg_create()

    def add(self, value: Any, accumulator: Any) -> tuple[int, float]:
        return logic.agg_add(tuple(accumulator), value[4], value[3])

    def get_result(self, accumulator: Any) -> tuple[int, float]:
        return logic.agg_result(tuple(accumulator))

    def merge(self, acc_a: Any, acc_b: Any) -> tuple[int, float]:
        return logic.agg_merge(tuple(acc_a), tuple(acc_b))


class ScoreWindow(ProcessWindowFunction):
    """Score an item's window against its history of earlier windows (per-item global state)."""

    def __init__(self, spec: WindowSpec, policy: ViralPolicy) -> None:
        self.spec, self.policy = spec, policy

    def open(self, runtime_context: Any) -> None:
        ttl_ms = (self.policy.baseline_windows + 1) * self.spec.size_ms + self.spec.lateness_ms
        self.desc = MapStateDescriptor("history", Types.LONG(), Types.DOUBLE())
        self.desc.enable_time_to_live(StateTtlConfig.new_builder(Time.milliseconds(ttl_ms)).build())

    def process(self, key: Any, context: Any, elements: Iterable[Any]) -> Iterable[tuple]:
        count, weight = next(iter(elements))
        w = context.window()
        window = Window(w.start, w.end)
        state = context.global_state().get_map_state(self.desc)
        n, size = self.policy.baseline_windows, self.spec.size_ms
        history = {}
        for k in range(1, n + 1):
            v = state.get(window.end - k * size)
            if v is not None:
                history[window.end - k * size] = v
        s = logic.score(key[0], key[1], window, (count, weight), history, self.spec, self.policy)
        state.put(window.end, float(weight))
        state.remove(window.end - n * size)
        yield (self.spec.label, s.kind, s.item, s.start, s.end, s.count, s.weight, s.score,
               s.velocity, s.zscore, s.viral)


class RankWindow(KeyedProcessFunction):
    """Top-K of one (label, kind, window): emitted when the watermark passes its end, again on late updates."""

    def __init__(self, specs: Mapping[str, WindowSpec], k: int) -> None:
        self.specs, self.k = dict(specs), k

    def open(self, runtime_context: Any) -> None:
        ctx = runtime_context
        self.items = ctx.get_map_state(MapStateDescriptor("items", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.fired = ctx.get_state(ValueStateDescriptor("fired", Types.BOOLEAN()))

    def _emit(self, label: str, kind: str, start: int, end: int) -> Iterable[logic.TopK]:
        scored = [Scored(*v[1:]) for v in self.items.values()]
        yield from logic.top_k(kind, Window(start, end), scored, self.specs[label], self.k)

    def process_element(self, value: Any, ctx: Any) -> Iterable[logic.TopK]:
        self.items.put(value[2], tuple(value))
        if self.fired.value():
            yield from self._emit(value[0], value[1], value[3], value[4])
        else:
            ctx.timer_service().register_event_time_timer(value[4] - 1)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterable[logic.TopK]:
        label, kind, end = ctx.get_current_key()
        spec = self.specs[label]
        if timestamp == end - 1:
            self.fired.update(True)
            yield from self._emit(label, kind, end - spec.size_ms, end)
            ctx.timer_service().register_event_time_timer(end + spec.lateness_ms)
        else:
            self.items.clear()
            self.fired.clear()


class Publish(MapFunction):
    """Write each ranked list to trending.v1, Redis and Cassandra (synchronously)."""

    def __init__(self, settings: Settings, config: TrendingConfig) -> None:
        self.settings, self.config = settings, config

    def open(self, runtime_context: Any) -> None:
        self.publisher = _publisher(self.settings, self.config)

    def map(self, topk: Any) -> int:
        return self.publisher.publish(topk)


class PublishLate(MapFunction):
    """Dead-letter and count contributions that came after their windows' allowed lateness."""

    def __init__(self, settings: Settings, config: TrendingConfig, label: str) -> None:
        self.settings, self.config, self.label = settings, config, label

    def open(self, runtime_context: Any) -> None:
        self.publisher = _publisher(self.settings, self.config)

    def map(self, v: Any) -> int:
        self.publisher.late(Contribution(v[0], v[1], v[2], v[3], v[4]), v[5], v[6], v[7], self.label)
        return 1


def _discard(ds: DataStream, name: str) -> None:
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    ds.sink_to(Sink(jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink())).name(name)


def source_sql(settings: Settings, config: TrendingConfig, table: str = "trending_source") -> str:
    """DDL of the raw-bytes Kafka source with topic/partition/offset metadata."""
    bounded = ", 'scan.bounded.mode' = 'latest-offset'" if config.bounded else ""
    return f"""
        CREATE TEMPORARY TABLE {table} (
          `topic` STRING METADATA VIRTUAL,
          `partition` INT METADATA VIRTUAL,
          `offset` BIGINT METADATA VIRTUAL,
          `data` BYTES
        ) WITH (
          'connector' = 'kafka', 'topic' = '{";".join(config.source_topics)}',
          'properties.bootstrap.servers' = '{settings.kafka_bootstrap}',
          'properties.group.id' = '{config.group_id}',
          'properties.auto.offset.reset' = 'earliest',
          'scan.startup.mode' = 'group-offsets', 'format' = 'raw'{bounded})"""


def build(t_env: StreamTableEnvironment, settings: Settings, config: TrendingConfig) -> None:
    """Add the trending pipeline to ``t_env`` (run it with its environment's ``execute``)."""
    t_env.execute_sql(source_sql(settings, config))
    raw = t_env.to_data_stream(t_env.sql_query(
        "SELECT `topic`, `partition`, `offset`, `data` FROM trending_source"))
    wm = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(max(s.out_of_orderness_ms for s in config.windows)))
    if config.idleness_ms:
        wm = wm.with_idleness(Duration.of_millis(config.idleness_ms))
    events = (raw.flat_map(Decode(settings, config), output_type=contrib_type()).name("decode").uid("decode")
              .assign_timestamps_and_watermarks(wm.with_timestamp_assigner(EventTime()))
              .name("event-time").uid("event-time"))
    scored: DataStream | None = None
    for spec in config.windows:
        late_tag = OutputTag(f"late-{spec.label}", contrib_type())
        windowed = (events.key_by(lambda v: (v[0], v[1]), key_type=Types.TUPLE([Types.STRING(), Types.STRING()]))
                    .window(SlidingEventTimeWindows.of(Time.milliseconds(spec.size_ms),
                                                       Time.milliseconds(spec.slide_ms)))
                    .allowed_lateness(spec.lateness_ms)
                    .side_output_late_data(late_tag)
                    .aggregate(Aggregate(), ScoreWindow(spec, config.policy),
                               accumulator_type=Types.TUPLE([Types.LONG(), Types.DOUBLE()]),
                               output_type=scored_type())
                    .name(f"window-{spec.label}").uid(f"window-{spec.label}"))
        late = windowed.get_side_output(late_tag)
        _discard(late.map(PublishLate(settings, config, spec.label), output_type=Types.INT())
                 .name(f"late-{spec.label}").uid(f"late-{spec.label}"), f"late-{spec.label}-done")
        scored = windowed if scored is None else scored.union(windowed)
    assert scored is not None, "at least one window spec is required"
    ranked = (scored.key_by(lambda v: (v[0], v[1], v[4]),
                            key_type=Types.TUPLE([Types.STRING(), Types.STRING(), Types.LONG()]))
              .process(RankWindow({s.label: s for s in config.windows}, config.k),
                       output_type=Types.PICKLED_BYTE_ARRAY())
              .name("top-k").uid("top-k"))
    _discard(ranked.map(Publish(settings, config), output_type=Types.INT()).name("publish").uid("publish"),
             "published")
