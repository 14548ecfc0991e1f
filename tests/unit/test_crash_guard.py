"""A crashed worker commits nothing more and exits non-zero within a bound (issue #13, defects 2, 3)."""

from __future__ import annotations

from typing import Any, ClassVar

from mode import CrashingSupervisor
from support.serde import mock_serde

from core.settings import Settings
from streams.samples import sample_event
from topologies import faust_runtime as rt
from topologies.engagement import app as engagement_app
from topologies.fanout import app as fanout_app


class FakeTimer:
    """A threading.Timer stand-in: records the deadline; the test fires it."""

    made: ClassVar[list[FakeTimer]] = []

    def __init__(self, interval: float, fn: Any) -> None:
        self.interval, self.fn, self.started, self.daemon = interval, fn, False, False
        FakeTimer.made.append(self)

    def start(self) -> None:
        self.started = True


def _guard(exits: list[int]) -> rt.CrashGuard:
    FakeTimer.made = []
    return rt.CrashGuard(12.0, exit=exits.append, timer=FakeTimer)


def test_trip_arms_one_daemon_deadline_that_exits_nonzero() -> None:
    exits: list[int] = []
    guard = _guard(exits)
    assert not guard.tripped and guard.exit_code(0) == 0
    guard.trip(RuntimeError("cassandra down"))
    guard.trip(RuntimeError("again"))  # idempotent: one deadline, the first reason
    assert guard.tripped and str(guard.reason) == "cassandra down"
    [timer] = FakeTimer.made
    assert timer.started and timer.daemon and timer.interval == 12.0
    assert exits == []
    timer.fn()  # the graceful stop did not finish in time (e.g. hung in consumer.commit())
    assert exits == [rt.EXIT_CRASHED] and rt.EXIT_CRASHED != 0
    assert guard.exit_code(0) == rt.EXIT_CRASHED  # a stop that did finish still exits non-zero


def test_shutdown_without_crash_is_bounded_too_and_exits_with_its_own_code() -> None:
    exits: list[int] = []
    guard = _guard(exits)
    guard.arm()
    guard.arm()
    assert len(FakeTimer.made) == 1 and FakeTimer.made[0].started
    assert guard.exit_code(0) == 0 and guard.exit_code(None) == 0 and guard.exit_code(2) == 2


def test_without_an_exit_no_deadline_is_started() -> None:
    FakeTimer.made = []
    guard = rt.CrashGuard(1.0, timer=FakeTimer)  # apps built in tests: never end the process
    guard.trip(RuntimeError("x"))
    assert guard.tripped and FakeTimer.made == []


async def test_trip_freezes_the_faust_consumer_commits(tmp_path) -> None:
    app = rt.create_faust_app(Settings(state_dir=tmp_path), "unit", app_id="unit-guard",
                              broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    calls: list[Any] = []

    async def commit_to_kafka(offsets: Any) -> bool:
        calls.append(offsets)
        return True

    consumer._commit = commit_to_kafka  # the driver's commit: must never be reached
    rt.crash_worker(app, RuntimeError("cassandra down"))
    assert app.guard.tripped
    assert await consumer.commit() is False
    assert await consumer.force_commit() is False
    assert await consumer.commit_and_end_transactions() is None
    assert calls == []


async def test_app_crash_from_any_service_trips_the_guard(tmp_path) -> None:
    app = rt.create_faust_app(Settings(state_dir=tmp_path), "unit", app_id="unit-guard-2",
                              broker="kafka://127.0.0.1:1")
    app._crash(RuntimeError("consumer died"))  # what mode does to the app when a child crashes
    assert app.guard.tripped and str(app.guard.reason) == "consumer died"


def test_faust_commit_bookkeeping_lets_a_one_offset_hole_at_the_head_through(tmp_path) -> None:
    """The faust-streaming 0.15.3 behaviour the guard protects against (evidence for defect 2).

    ``_committed_offset`` holds the next offset to read (what Kafka stores); ``_new_offset`` only
    refuses when ``min(acked) - committed > 1``, so with offset 6625 unacked (its batch crashed)
    and 6626 acked, it returns 6627: the failed record is committed past.
    """
    from faust.types import TP

    app = rt.create_faust_app(Settings(state_dir=tmp_path), "unit", app_id="unit-hole",
                              broker="kafka://127.0.0.1:1")
    consumer = app.consumer
    tp = TP("posts.v1", 1)
    consumer._committed_offset[tp] = 6625
    consumer._acked[tp] = [6626]
    assert consumer._new_offset(tp) == 6627
    consumer._committed_offset[tp] = 6625
    consumer._acked[tp] = [6627]  # a hole of two is refused
    assert consumer._new_offset(tp) is None


def test_every_agent_crashes_the_worker_instead_of_restarting_in_process(tmp_path) -> None:
    settings = Settings(state_dir=tmp_path)
    for module in (fanout_app, engagement_app):
        app = module.create_app(settings, app_id=f"unit-sup-{module.__name__}", serde=mock_serde(),
                                broker="kafka://127.0.0.1:1")
        assert app.agents and all(a.supervisor_strategy is CrashingSupervisor
                                  for a in app.agents.values()), module.__name__


async def test_a_failing_batch_trips_the_guard_before_anything_else(tmp_path, monkeypatch) -> None:
    def process(recs: list[rt.SourceRecord]) -> list:
        raise RuntimeError("cassandra down")

    serde = mock_serde()
    app = fanout_app.create_app(Settings(state_dir=tmp_path), app_id="unit-fail-guard",
                                serde=serde, broker="kafka://127.0.0.1:1", process=process)
    states: list[bool] = []

    async def crash(exc: BaseException) -> None:  # by the time the app crashes, commits are frozen
        states.append(app.guard.tripped)

    monkeypatch.setattr(app, "crash", crash)
    agent = app.agents["fanout-posts"]
    try:
        async with agent.test_context() as ctx:
            await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k")
    except RuntimeError:
        pass
    assert states == [True] and str(app.guard.reason) == "cassandra down"


def test_users_and_graph_agents_do_not_restart_in_process_either(tmp_path) -> None:
    from topologies.graph import app as graph_app
    from topologies.users import app as users_app

    settings = Settings(state_dir=tmp_path)
    for module in (graph_app, users_app):
        app = module.create_app(settings, app_id=f"unit-sup-{module.__name__}", serde=mock_serde(),
                                broker="kafka://127.0.0.1:1")
        assert app.agents and all(a.supervisor_strategy is CrashingSupervisor
                                  for a in app.agents.values()), module.__name__


async def test_batches_are_acked_in_offset_order_even_when_later_deliveries_finish_first(
        tmp_path, monkeypatch) -> None:
    """A later batch acked before an earlier one leaves a hole Faust may commit past (see above)."""
    import asyncio

    import faust

    serde = mock_serde()
    app = rt.create_faust_app(Settings(state_dir=tmp_path), "unit", app_id="unit-order",
                              broker="kafka://127.0.0.1:1")
    source = app.topic("posts.v1", key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    gate = asyncio.Event()
    handled: list[int] = []
    acked: list[int] = []

    async def handler(recs: list[rt.SourceRecord]) -> Any:
        handled.append(recs[0].value["post_id"])

        async def delivered() -> None:
            if recs[0].value["post_id"] == 1:
                await gate.wait()  # the first batch's deliveries are slow
        return delivered()

    original = faust.Stream.ack

    async def ack(self: Any, event: Any) -> bool:
        if not event.message.acked:  # take_events also "acks" held events: a no-op
            acked.append(event.message.offset)
        return await original(self, event)

    monkeypatch.setattr(faust.Stream, "ack", ack)
    agent = rt.register_batch_agent(app, source, handler, serde=serde, name="unit-order")

    async def until(cond: Any) -> None:
        for _ in range(1000):
            if cond():
                return
            await asyncio.sleep(0.01)

    async with agent.test_context() as ctx:
        post = sample_event("PostCreated")
        await ctx.put(serde.encode("PostCreated", {**post, "post_id": 1}), key=b"k", wait=False)
        await until(lambda: handled == [1])
        await ctx.put(serde.encode("PostCreated", {**post, "post_id": 2}), key=b"k", wait=False)
        await until(lambda: handled == [1, 2])
        for _ in range(20):
            await asyncio.sleep(0)
        assert acked == []  # the second batch is delivered but waits for the first
        gate.set()
        await until(lambda: len(acked) == 2)
    assert acked == sorted(acked) and len(acked) == 2


def test_a_killed_workers_partitions_come_back_within_the_session_timeout(tmp_path) -> None:
    """Issue #13 (lag trailing ~45-60 s): a worker killed -9 (or exiting 70) never leaves its group, so
    its partitions stayed assigned to it for Faust's default 60 s session and its restarted successor
    consumed nothing until then. The session timeout is a setting, 10 s by default."""
    app = rt.create_faust_app(Settings(state_dir=tmp_path), "unit", app_id="unit-session",
                              broker="kafka://127.0.0.1:1")
    assert app.conf.broker_session_timeout == 10.0
    assert app.conf.broker_heartbeat_interval <= app.conf.broker_session_timeout / 3
    slow = rt.create_faust_app(Settings(state_dir=tmp_path, topology_session_timeout_s=30), "unit",
                               app_id="unit-session-30", broker="kafka://127.0.0.1:1")
    assert (slow.conf.broker_session_timeout, slow.conf.broker_heartbeat_interval) == (30.0, 3.0)


async def _until(cond: Any, timeout_s: float = 10.0) -> None:
    import asyncio

    for _ in range(int(timeout_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)


async def test_a_delivery_that_never_completes_crashes_the_worker_with_its_batch_unacked(
        tmp_path, monkeypatch) -> None:
    """A batch's Kafka deliveries are awaited for at most topology_await_timeout_s, not forever."""
    import asyncio

    import faust

    serde = mock_serde()
    app = rt.create_faust_app(Settings(state_dir=tmp_path, topology_await_timeout_s=0.3), "unit",
                              app_id="unit-stalled-delivery", broker="kafka://127.0.0.1:1")
    source = app.topic("posts.v1", key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")
    never: asyncio.Future = asyncio.get_running_loop().create_future()  # a delivery that never lands
    crashed: list[BaseException] = []
    acked: list[int] = []

    async def handler(recs: list[rt.SourceRecord]) -> Any:
        return never

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    original = faust.Stream.ack

    async def ack(self: Any, event: Any) -> bool:
        if not event.message.acked:
            acked.append(event.message.offset)
        return await original(self, event)

    monkeypatch.setattr(app, "crash", crash)
    monkeypatch.setattr(faust.Stream, "ack", ack)
    agent = rt.register_batch_agent(app, source, handler, serde=serde, name="unit-stalled")
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k", wait=False)
        await _until(lambda: crashed)
    assert crashed and isinstance(crashed[0], rt.StalledAwait), crashed
    assert app.guard.tripped and isinstance(app.guard.reason, rt.StalledAwait)
    assert acked == [] and never.cancelled()


async def test_a_call_in_a_thread_that_never_returns_is_bounded_too(tmp_path) -> None:
    import threading
    import time

    import pytest

    app = rt.create_faust_app(Settings(state_dir=tmp_path, topology_await_timeout_s=0.3), "unit",
                              app_id="unit-stalled-thread", broker="kafka://127.0.0.1:1")
    release = threading.Event()
    started = time.monotonic()
    try:
        with pytest.raises(rt.StalledAwait, match="in a thread did not complete within 0.3 s"):
            await rt.in_thread(app, release.wait)
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert await rt.in_thread(app, sum, [1, 2]) == 3  # a call that returns is just awaited


async def test_the_moderation_worker_crashes_when_scoring_hangs(tmp_path, monkeypatch) -> None:
    """The moderation handler's store and model calls run in a thread with the same bound."""
    import threading

    from topologies.moderation import app as moderation_app

    release = threading.Event()
    def score_items(eng: Any, items: list) -> list:  # e.g. a store call that never returns
        release.wait()
        return []

    monkeypatch.setattr(moderation_app, "score_items", score_items)
    serde = mock_serde()
    app = moderation_app.create_app(Settings(state_dir=tmp_path, topology_await_timeout_s=0.3),
                                    app_id="unit-mod-stall", serde=serde, broker="kafka://127.0.0.1:1")
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(app, "crash", crash)
    try:
        async with app.agents["moderation-posts"].test_context() as ctx:
            await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k", wait=False)
            await _until(lambda: crashed)
    except rt.StalledAwait:
        pass
    finally:
        release.set()
    assert crashed and isinstance(crashed[0], rt.StalledAwait), crashed
    assert "score_items" in str(crashed[0])
