"""Shared Faust glue: build an app from settings, and run decoded agents with a dead-letter topic.

Every Faust topology (``topologies/{fanout,graph,engagement,users}/app.py``) follows one
convention: ``create_app(settings, *, app_id=None, serde=None, broker=None, <test seams>)`` builds
the app without touching an engine, and ``run(settings)`` runs it. The fan-out worker, for example::

    def create_app(settings, *, app_id=None, serde=None, broker=None, process=None, emit=None):
        app = create_faust_app(settings, "fanout", app_id=app_id, broker=broker)
        serde = serde or make_serde(settings)
        updates = catalog_topic(app, TIMELINE_UPDATES, settings)

        async def handle(recs: list[SourceRecord]) -> Awaitable[Any] | None:
            results = await asyncio.to_thread(run_batch, recs)   # side effects; raise to crash
            return await send(serde, updates, results, "fanout")  # deliveries, awaited before the ack

        register_batch_agent(app, catalog_topic(app, POSTS, settings), handle, serde=serde,
                             name="fanout-posts", validate=check_post_record)
        return app

    def run(settings):
        run_worker(create_app(settings))

:func:`create_faust_app` takes the consumer group (``feedstream-<name>`` plus
``settings.topology_group_suffix``, unless ``app_id`` is given) and the new group's offset reset
(``settings.topology_offset_reset``) from settings, the same way for every topology. The agents:
:func:`register_batch_agent` (fan-out, graph), ``register_pipelined_agent`` in
:mod:`topologies.engagement.batching` (engagement) and :func:`register_agent`, one record at a
time (users).

Semantics of :func:`register_agent`:

- Records are read as raw bytes and decoded with :class:`streams.serde.Serde` (Confluent Avro).
- A record that does not decode (``DecodeError``), fails validation, or whose handler raises
  :class:`streams.errors.PoisonRecord` is sent to ``dead-letters.v1`` (with its source topic,
  partition, offset and original bytes), the send is awaited, and processing carries on.
- Any other exception is logged and crashes the worker: nothing is swallowed, the app's
  :class:`CrashGuard` freezes every later offset commit at once, the agent is not restarted in
  the process (``CrashingSupervisor``), and :func:`run_worker` exits with :data:`EXIT_CRASHED`
  within ``settings.topology_shutdown_grace_s`` even if the stop hangs. The offset of the failed
  record is never committed, so the restarted process re-reads it.
- Faust acks an event only after the handler returned, so offsets commit after side effects.
- Nothing is awaited forever: a Kafka delivery (a batch's, a dead letter's) and a blocking call
  in a thread (:func:`in_thread`) are awaited for at most ``settings.topology_await_timeout_s``
  (:func:`bounded`); past it :class:`StalledAwait` crashes the worker as above, records unacked.

:func:`register_batch_agent` does the same for batches (``stream.take_events``): the handler gets
every decodable record of up to ``max_batch`` events buffered for at most ``within_s``, in offset
order. The handler applies its side effects and may return an awaitable of its Kafka deliveries:
the agent then goes on with the next batch, and acks this one only once the deliveries completed
(a failed delivery crashes the worker with the batch unacked), and always in offset order. So the visible writes of batch k+1
do not wait for the broker's acks of batch k, and offsets still commit after every side effect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
from mode import CrashingSupervisor

from core import tracing
from core.events import dead_letter
from core.logs import EVENT_ID
from core.logs import install as install_log_format
from core.settings import Settings
from stores import progress
from streams.catalog import DEAD_LETTERS, Topic
from streams.errors import DecodeError, PoisonRecord, SchemaValidationError
from streams.producer import event_type_headers
from streams.serde import Serde
from topologies import health
from topologies import metrics as wmetrics

log = logging.getLogger(__name__)

Handler = Callable[["SourceRecord"], Awaitable[None]]
BatchHandler = Callable[[list["SourceRecord"]], Awaitable["Awaitable[Any] | None"]]
Validator = Callable[["SourceRecord"], None]
POISON = (DecodeError, PoisonRecord, SchemaValidationError)
EXIT_CRASHED = 70  # EX_SOFTWARE: the worker crashed or could not stop in time; supervisors restart it


@dataclass(frozen=True)
class SourceRecord:
    """A decoded Kafka record with its coordinates (short record name, e.g. ``PostCreated``)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    name: str
    value: dict[str, Any]
    timestamp_ms: int
    raw: bytes | None = field(default=None, repr=False, compare=False)  # the record's bytes, for a dead letter
    trace: str | None = field(default=None, repr=False, compare=False)  # W3C traceparent (tracing on only)


async def _no_commit(*args: Any, **kwargs: Any) -> bool:
    return False


def freeze_commits(consumer: Any) -> None:
    """Make every later offset commit of this Faust consumer a no-op (instance attributes)."""
    consumer.commit = consumer.force_commit = consumer._commit_offsets = _no_commit


class CrashGuard:
    """What a worker does once it crashed: commit nothing more, and die within ``grace_s``.

    :meth:`trip` (on any non-poison handler exception, and on any crash of the app or the worker)
    freezes the consumer's commits at once, so no offset moves past a record whose side effects
    failed, whatever Faust does next (its agent supervisor restarting the agent in-process, its
    ``on_task_error`` commit, the commit on stop; its ``Consumer._new_offset`` lets a one-offset
    hole at the head through). It also starts the deadline: a graceful stop (leaving the group)
    may take up to ``grace_s``; then ``exit(EXIT_CRASHED)`` ends the process even if the stop hangs
    (e.g. in ``consumer.commit()`` against a dead engine). :meth:`arm` starts the same deadline
    for a shutdown without a crash. Until :func:`run_worker` sets ``exit`` (``os._exit``), no
    deadline is started (apps built in tests never end the test process).
    """

    def __init__(self, grace_s: float, *, exit: Callable[[int], Any] | None = None,
                 timer: Callable[[float, Callable[[], None]], Any] = threading.Timer) -> None:
        self.grace_s = grace_s
        self.exit = exit
        self.reason: BaseException | None = None
        self._timer_factory = timer
        self._timer: Any = None
        self._lock = threading.Lock()

    @property
    def tripped(self) -> bool:
        """Whether the worker crashed."""
        return self.reason is not None

    def trip(self, reason: BaseException, consumer: Any = None) -> None:
        """Record the crash, freeze ``consumer``'s commits and start the exit deadline (idempotent)."""
        if consumer is not None:
            freeze_commits(consumer)
        with self._lock:
            first, self.reason = self.reason is None, self.reason or reason
        if first:
            log.critical("worker crashed (%s: %s): no offset is committed from now on; the process "
                         "exits with %d within %.0f s", type(reason).__name__, reason, EXIT_CRASHED,
                         self.grace_s)
        self.arm()

    def arm(self) -> None:
        """Start the deadline (once): after ``grace_s`` the process exits with EXIT_CRASHED."""
        with self._lock:
            if self.exit is None or self._timer is not None:
                return
            self._timer = self._timer_factory(self.grace_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        log.critical("the worker did not stop within %.0f s; exiting with %d", self.grace_s,
                     EXIT_CRASHED)
        _flush_logs()
        assert self.exit is not None
        self.exit(EXIT_CRASHED)

    def exit_code(self, code: Any) -> int:
        """The process exit code for a worker that returned ``code`` (non-zero once tripped)."""
        if self.tripped:
            return EXIT_CRASHED
        return code if isinstance(code, int) else (0 if code is None else 1)


def _flush_logs() -> None:
    for out in [*logging.getLogger().handlers, sys.stdout, sys.stderr]:
        with suppress(OSError, ValueError):  # best effort on the way out
            out.flush()


class WorkerApp(faust.App):
    """A faust.App whose crash (ours, or any service's reaching it) trips its :class:`CrashGuard`."""

    guard: CrashGuard

    async def crash(self, reason: BaseException) -> None:
        self.guard.trip(reason, self._consumer)  # before any await: nothing commits in between
        await super().crash(reason)

    def _crash(self, reason: BaseException) -> None:
        self.guard.trip(reason, self._consumer)
        super()._crash(reason)


def guard_of(app: faust.App) -> CrashGuard:
    """``app``'s :class:`CrashGuard` (one is attached to apps not built by :func:`create_faust_app`)."""
    guard = getattr(app, "guard", None)
    if guard is None:
        guard = CrashGuard(Settings.model_fields["topology_shutdown_grace_s"].default)
        setattr(app, "guard", guard)  # noqa: B010 - faust.App declares no such attribute
    return guard


def crash_worker(app: faust.App, exc: BaseException) -> None:
    """Trip ``app``'s guard for a non-poison handler exception (then ``await app.crash(exc)``)."""
    guard_of(app).trip(exc, app._consumer)


class StalledAwait(RuntimeError):
    """An await of a worker (a Kafka delivery, a blocking call in a thread) outlived its bound."""


def await_timeout_s(app: faust.App) -> float:
    """How long ``app`` awaits one delivery or call in a thread (``topology_await_timeout_s``)."""
    bound = getattr(app, "await_timeout_s", None)
    return float(bound if bound is not None else Settings.model_fields["topology_await_timeout_s"].default)


async def bounded(app: faust.App, aw: Awaitable[Any], what: str) -> Any:
    """Await ``aw`` for at most :func:`await_timeout_s`; past it, cancel it and raise :class:`StalledAwait`.

    Called where a handler or the batch glue awaits something that may never complete (a Kafka
    delivery, a store call in a thread): the exception crashes the worker like any handler error,
    with its records unacked, so a worker that cannot make progress exits within a bound.
    """
    timeout = await_timeout_s(app)
    fut = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({fut}, timeout=timeout)
    except asyncio.CancelledError:
        fut.cancel()
        raise
    if not done:
        fut.cancel()
        raise StalledAwait(f"{what} did not complete within {timeout:g} s")
    return fut.result()


async def in_thread(app: faust.App, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """``asyncio.to_thread(fn, ...)`` bounded by :func:`bounded` (the thread itself cannot be stopped:
    the worker crashes and exits, and :func:`run_worker`'s exit does not wait for the thread)."""
    what = f"{getattr(fn, '__qualname__', fn)} in a thread"
    return await bounded(app, asyncio.to_thread(fn, *args, **kwargs), what)


def group_id(settings: Settings, name: str) -> str:
    """The default consumer group (Faust app id) of topology ``name``: ``feedstream-<name><suffix>``."""
    return progress.group_id(settings, name)


def create_faust_app(settings: Settings, name: str, *, app_id: str | None = None,
                     broker: str | None = None, **overrides: Any) -> WorkerApp:
    """A faust.App for topology ``name`` with our defaults.

    The consumer group is ``app_id`` or :func:`group_id` (``feedstream-<name>`` plus
    ``settings.topology_group_suffix``); a new group starts at ``settings.topology_offset_reset``.
    ``broker`` (a ``kafka://`` URL) replaces ``settings.kafka_bootstrap`` (tests: an unreachable one).
    ``overrides`` are further Faust settings of this topology (e.g. ``broker_max_poll_records``).
    """
    app_id = app_id or group_id(settings, name)
    datadir = settings.state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = dict(
        broker=broker or f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_disable_leader=True,
        consumer_auto_offset_reset=settings.topology_offset_reset,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        broker_commit_interval=1.0,
        # a worker killed without leaving its group keeps its partitions until the session times
        # out, and the group (its restarted successor too) consumes nothing until then
        broker_session_timeout=settings.topology_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.topology_session_timeout_s / 4),
        datadir=str(datadir),
        table_cleanup_interval=3600.0,
    )
    conf.update(overrides)
    app = WorkerApp(app_id, **conf)
    app.guard = CrashGuard(settings.topology_shutdown_grace_s)
    app.await_timeout_s = settings.topology_await_timeout_s  # type: ignore[attr-defined]  # bounded()
    app.topology = name  # type: ignore[attr-defined]  # metric labels
    app.probe = wmetrics.WorkerProbe(name, settings.worker_live_max_age_s)  # type: ignore[attr-defined]
    app.probe.running = lambda: worker_alive(app)  # type: ignore[attr-defined]
    app.metrics_settings = settings  # type: ignore[attr-defined]  # run_worker serves the port
    install_heartbeat(app, health.heartbeat_path(settings.state_dir, name))
    return app


def topology_of(app: faust.App) -> str:
    """The topology name of ``app`` (its group id if not built by :func:`create_faust_app`)."""
    return getattr(app, "topology", None) or app.conf.id


def _progress_snapshot(app: faust.App) -> tuple[dict[Any, int | None], dict[Any, int | None]]:
    """Committed offsets and high-water marks of ``app``'s assigned partitions."""
    consumer = app.consumer
    committed: dict[Any, int | None] = {}
    highwater: dict[Any, int | None] = {}
    for tp in consumer.assignment():
        committed[tp] = consumer._committed_offset.get(tp)
        try:
            highwater[tp] = consumer.highwater(tp)
        except Exception:  # not fetched yet / being revoked: unknown, not behind
            highwater[tp] = None
    return committed, highwater


def worker_alive(app: faust.App) -> bool:
    """Not crashed, not stopping, and the consumer thread neither."""
    if guard_of(app).tripped or app.crashed or app.should_stop:
        return False
    thread = getattr(app.consumer, "_thread", None)
    return not (thread is not None and (thread.crashed or thread.should_stop))


def install_heartbeat(app: faust.App, path: Path, *, interval_s: float = health.HEARTBEAT_S,
                      stall_s: float = health.STALL_S) -> None:
    """Touch ``path`` every ``interval_s`` while ``app`` is alive and making progress.

    The touch runs in a timer of the app itself, so it stops when the event loop is blocked or
    the app stops or crashes; :class:`topologies.health.ProgressMonitor` withholds it once
    records have waited ``stall_s`` with no commit. A caught-up (idle) worker keeps touching.
    """
    monitor = health.ProgressMonitor(stall_s, from_latest=app.conf.consumer_auto_offset_reset == "latest")
    app.heartbeat_path = path  # type: ignore[attr-defined]

    async def heartbeat() -> None:
        if not worker_alive(app):
            return
        try:
            committed, highwater = _progress_snapshot(app)
        except Exception:  # consumer not started yet: alive, nothing assigned
            committed, highwater = {}, {}
        progressing = monitor.observe(committed, highwater, time.monotonic())
        probe = getattr(app, "probe", None)
        if probe is not None:
            probe.observe(committed, highwater, progressing)
        if progressing:
            health.touch(path)
        else:
            log.error("no commit for %.0fs with records waiting: heartbeat withheld (behind: %s)", stall_s,
                      ", ".join(f"{getattr(tp, 'topic', tp)}[{getattr(tp, 'partition', '?')}] committed "
                                f"{c} < {hw}" for tp, c, hw in monitor.waiting[:8]))

    heartbeat.__name__ = "feedstream_heartbeat"
    app.timer(interval_s, on_leader=False)(heartbeat)


def catalog_topic(app: faust.App, topic: Topic, settings: Settings) -> faust.TopicT:
    """A raw-bytes faust topic for a catalog entry (partitions from the catalog or settings)."""
    resolved = topic.resolved(settings)
    return app.topic(resolved.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=resolved.partitions,
                     replicas=resolved.replication)


def make_serde(settings: Settings) -> Serde:
    """A Serde on the configured schema registry."""
    return Serde(settings.registry_url)


async def send_dead_letter(app: faust.App, serde: Serde, dlq: faust.TopicT, group: str,
                           message: Any, exc: BaseException) -> None:
    """Encode and send a DeadLetter for ``message`` (a faust Message), awaiting delivery."""
    dl = dead_letter(group=group, topic=message.topic, partition=message.partition,
                     offset=message.offset, key=message.key, value=message.value, error=str(exc),
                     error_type=type(exc).__name__)
    data = serde.encode("DeadLetter", dl, DEAD_LETTERS.name)
    fut = await dlq.send(key=message.topic.encode(), value=data,
                         headers=event_type_headers("io.feedstream.derived.DeadLetter"))
    await bounded(app, fut, f"the dead letter of {message.topic}[{message.partition}]@{message.offset}")
    wmetrics.dead_lettered(topology_of(app), message.topic, exc)
    log.warning("dead-lettered %s[%d]@%d: %s: %s", message.topic, message.partition,
                message.offset, type(exc).__name__, exc)


async def dead_letter_record(app: faust.App, serde: Serde, dlq: faust.TopicT, group: str,
                             rec: SourceRecord, exc: BaseException) -> None:
    """Dead-letter a decoded record a handler refused (its error says why), awaiting delivery."""
    message = SimpleNamespace(topic=rec.topic, partition=rec.partition, offset=rec.offset, key=rec.key,
                              value=rec.raw)
    await send_dead_letter(app, serde, dlq, group, message, exc)


def dlq_topic(app: faust.App) -> faust.TopicT:
    """The dead-letter topic as a raw-bytes faust topic of ``app``."""
    return app.topic(DEAD_LETTERS.name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw")


def decode_record(serde: Serde, msg: Any) -> SourceRecord:
    """Decode a faust Message of raw bytes into a :class:`SourceRecord` (raises DecodeError)."""
    decoded = serde.decode(msg.value)
    return SourceRecord(msg.topic, msg.partition, msg.offset, msg.key, decoded.name, decoded.value,
                        int(msg.timestamp * 1000), msg.value,
                        tracing.traceparent_of(msg.headers) if tracing.ENABLED else None)


def traced(recs: list[SourceRecord], topology: str) -> tuple[list[SourceRecord], list[Any]]:
    """Start a ``<topology> apply`` span for each record that carries a trace (child of its producer's
    span); the records returned carry their own span's traceparent on (e.g. to the realtime push)."""
    if not tracing.ENABLED:
        return recs, []
    spans = tracing.record_spans([r.trace for r in recs], f"{topology} apply", attributes=[
        {"messaging.kafka.offset": r.offset, "messaging.destination.partition.id": str(r.partition),
         "feedstream.record": r.name, "feedstream.event_id": str(r.value.get("event_id"))} for r in recs])
    return [replace(r, trace=tracing.traceparent_of_span(s)) if s is not None else r
            for r, s in zip(recs, spans)], spans


def batch_event_ids(recs: Sequence[SourceRecord], most: int = 3) -> str | None:
    """The event ids of a batch for its log lines (the first ``most``, then how many more)."""
    ids = [str(r.value.get("event_id")) for r in recs[:most] if isinstance(r.value, dict)]
    more = len(recs) - most
    return (",".join(ids) + (f",+{more}" if more > 0 else "")) or None


def hold_acks(events: list[Any]) -> None:
    """Make these events un-ackable, so a crashing handler's records are never committed."""
    for event in events:
        event.message.acked = True  # Message.ack() is a no-op once set: the offset stays uncommitted


def register_agent(app: faust.App, source: faust.TopicT, handler: Handler, *, serde: Serde,
                   name: str, settings: Settings | None = None, concurrency: int = 1) -> Any:
    """Register an agent on ``source`` that decodes, calls ``handler`` and dead-letters poison."""
    dlq = dlq_topic(app)
    group = app.conf.id
    topology = topology_of(app)

    async def process(stream: faust.StreamT) -> None:
        async for event in stream.events():
            msg = event.message
            started = time.perf_counter()
            token = EVENT_ID.set(None)
            spans: list[Any] = []
            try:
                rec = decode_record(serde, msg)
                EVENT_ID.set(rec.value.get("event_id"))  # on this event's log lines
                (rec,), spans = traced([rec], topology)
                await handler(rec)
                tracing.end_all(spans)
                wmetrics.observe_batch(topology, [rec], started)
            except POISON as exc:
                tracing.end_all(spans, exc)
                await send_dead_letter(app, serde, dlq, group, msg, exc)
            except Exception as exc:
                tracing.end_all(spans, exc)
                crash_worker(app, exc)
                log.exception("%s crashed on %s[%d]@%d", name, msg.topic, msg.partition, msg.offset)
                hold_acks([event])
                await app.crash(exc)
                raise
            finally:
                EVENT_ID.reset(token)

    process.__name__ = name.replace("-", "_")
    return app.agent(source, name=name, concurrency=concurrency,
                     supervisor_strategy=CrashingSupervisor)(process)


async def decode_batch(app: faust.App, serde: Serde, dlq: faust.TopicT, group: str,
                       events: Sequence[Any], validate: Validator | None = None) -> list[SourceRecord]:
    """Decode (and ``validate``) a batch of events; poison ones are dead-lettered and left out."""
    recs: list[SourceRecord] = []
    for event in events:
        try:
            rec = decode_record(serde, event.message)
            if validate is not None:
                validate(rec)
            recs.append(rec)
        except POISON as exc:
            await send_dead_letter(app, serde, dlq, group, event.message, exc)
    return recs


def register_batch_agent(app: faust.App, source: faust.TopicT, handler: BatchHandler, *,
                         serde: Serde, name: str, validate: Validator | None = None,
                         max_batch: int = 500, within_s: float = 0.005, max_in_flight: int = 8) -> Any:
    """Register an agent calling ``handler`` once per batch of decoded records (poison dead-lettered).

    ``validate`` runs per record before the batch handler and may raise
    :class:`streams.errors.PoisonRecord`; such records (and undecodable ones) are dead-lettered and
    left out of the batch. Any exception from ``handler`` crashes the worker with the batch unacked.
    """
    dlq = dlq_topic(app)
    group = app.conf.id
    topology = topology_of(app)

    async def ack_after(stream: faust.StreamT, events: list[Any], done: Awaitable[Any],
                        previous: asyncio.Future | None) -> None:
        try:
            await bounded(app, done, f"{name}: the deliveries of a batch")
        except Exception as exc:
            crash_worker(app, exc)
            log.exception("%s: deliveries of a batch failed; crashing with it unacked", name)
            await app.crash(exc)
            raise
        if previous is not None:  # ack in offset order: never a hole below an acked batch
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                return
        for event in events:
            event.message.acked = False  # release the hold taken when the handler returned
            await stream.ack(event)

    async def process(stream: faust.StreamT) -> None:
        pending: deque[asyncio.Future] = deque()
        last: asyncio.Future | None = None  # the newest batch's ack task (acks stay in order)
        async for events in stream.take_events(max_batch, within_s):  # type: ignore[attr-defined]
            started = time.perf_counter()
            recs = await decode_batch(app, serde, dlq, group, events, validate)
            recs, spans = traced(recs, topology)
            token = EVENT_ID.set(batch_event_ids(recs))
            try:
                done = await handler(recs) if recs else None
                tracing.end_all(spans)
                wmetrics.observe_batch(topology, recs, started, len(events))
            except Exception as exc:
                tracing.end_all(spans, exc)
                crash_worker(app, exc)
                first = events[0].message
                log.exception("%s crashed on a batch of %d from %s[%d]@%d", name, len(events),
                              first.topic, first.partition, first.offset)
                hold_acks(list(events))
                await app.crash(exc)
                raise
            finally:
                EVENT_ID.reset(token)
            if done is None and last is not None and not last.done():
                done = asyncio.sleep(0)  # an earlier batch is still unacked: ack this one after it
            if done is not None:
                hold_acks(list(events))  # acked by ack_after once the deliveries completed
                last = asyncio.ensure_future(ack_after(stream, list(events), done, last))
                pending.append(last)
            while pending and (pending[0].done() or len(pending) > max_in_flight):
                await pending.popleft()  # re-raises a failed delivery here too

    process.__name__ = name.replace("-", "_")
    return app.agent(source, name=name, supervisor_strategy=CrashingSupervisor)(process)


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run ``app`` as a blocking worker in this process until interrupted or crashed.

    A crash (a non-poison handler exception, or any crash of the app or the worker) ends the
    process with :data:`EXIT_CRASHED` within ``topology_shutdown_grace_s`` with no offset committed
    after it (:class:`CrashGuard`), so a supervisor restarts it and the restart re-reads the failed
    records. Any shutdown is bounded the same way. Never returns.
    """
    from faust.worker import Worker

    guard = guard_of(app)
    guard.exit = os._exit
    heartbeat = getattr(app, "heartbeat_path", None)
    if heartbeat is not None:  # a restarted container keeps its volume: no stale heartbeat
        Path(heartbeat).unlink(missing_ok=True)
    probe, settings = getattr(app, "probe", None), getattr(app, "metrics_settings", None)
    if probe is not None and settings is not None:
        wmetrics.start(settings, topology_of(app), probe)  # /metrics, /livez, /readyz
    if settings is not None:
        tracing.setup(settings, topology_of(app))  # off unless FEEDSTREAM_TRACING_EXPORTER names one

    class GuardedWorker(Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            install_log_format(logger)  # JSON lines off a terminal, with event ids

        def on_worker_shutdown(self) -> None:
            reason = self.crash_reason or app.crash_reason
            if self.crashed or app.crashed or reason is not None:
                guard.trip(reason or RuntimeError("worker crashed"), app._consumer)
            guard.arm()  # a stop that hangs (e.g. a commit to a dead broker) ends the process anyway
            super().on_worker_shutdown()

    # aiokafka builds a debug record per send even when nothing logs it (~6% of worker CPU)
    for noisy in ("aiokafka", "aiokafka.producer", "aiokafka.consumer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    worker = GuardedWorker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    code: Any = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code
    code = guard.exit_code(code)
    if code == EXIT_CRASHED:
        log.critical("worker crashed (%r); exiting with %d", guard.reason, code)
        _flush_logs()
        os._exit(code)  # no interpreter teardown: it would wait on threads stuck in a dead engine
    sys.exit(code)  # a clean stop (the deadline armed at shutdown still bounds the teardown)
