"""The real graph and fan-out Faust apps under ``agent.test_context()`` (no broker, no engines).

The store-touching batch function and the Kafka emitter are injected; decoding, validation,
dead-lettering, batching and the TimelineUpdate values are the apps' own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from faust.types.tuples import Message
from support.serde import mock_serde

from core.feed import ADD, TimelineWrite
from core.settings import Settings
from streams.samples import sample_event
from topologies import faust_runtime as rt
from topologies.fanout import app as fanout_app
from topologies.fanout.runtime import timeline_update
from topologies.graph import app as graph_app


async def _until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for a batch to be processed (put(wait=True) only waits for the record to be buffered)."""
    for _ in range(int(timeout_s / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)


def _apps(tmp_path, module, seen: list, emitted: list, fail: bool = False,
          gate: asyncio.Event | None = None):
    serde = mock_serde()

    def process(recs: list[rt.SourceRecord]) -> list[tuple[rt.SourceRecord, list[TimelineWrite]]]:
        if fail:
            raise RuntimeError("store down")
        seen.append([(r.name, r.offset) for r in recs])
        return [(r, [TimelineWrite(f"reader-of-{r.offset}", 7, "ann", ADD)]) for r in recs]

    async def emit(serde_, topic, results, actor):
        values = [serde_.decode(serde_.encode("TimelineUpdate", timeline_update(w, rec, actor),
                                              "timeline-updates.v1")).value
                  for rec, writes in results for w in writes]

        async def delivered() -> None:  # the agent acks the batch only after this completes
            if gate is not None:
                await gate.wait()
            emitted.extend(values)
        return delivered()

    app = module.create_app(Settings(state_dir=tmp_path), app_id=f"unit-{module.__name__}-{id(seen)}",
                            serde=serde, broker="kafka://127.0.0.1:1", process=process, emit=emit)
    return app, serde


async def test_fanout_app_batches_posts_emits_updates_with_source_offsets_and_dead_letters(tmp_path, monkeypatch):
    seen: list = []
    emitted: list[dict[str, Any]] = []
    dead: list = []
    acked: list[int] = []
    gate = asyncio.Event()

    async def fake_dlq(app_, serde_, dlq, group, message, exc):
        dead.append(type(exc).__name__)

    def on_final_ack(message, consumer) -> bool:
        acked.append(message.offset)
        return True

    monkeypatch.setattr(rt, "send_dead_letter", fake_dlq)
    monkeypatch.setattr(Message, "on_final_ack", on_final_ack)
    app, serde = _apps(tmp_path, fanout_app, seen, emitted, gate=gate)
    agent = app.agents["fanout-posts"]
    post = sample_event("PostCreated", author_id="ann", post_id=7)
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("PostCreated", post), key=b"ann", wait=False)
        await ctx.put(b"not avro", key=b"ann", wait=False)
        await ctx.put(serde.encode("Followed", sample_event("Followed"), "posts.v1"), key=b"ann", wait=False)
        await ctx.put(serde.encode("PostDeleted", sample_event("PostDeleted", post_id=7, author_id="ann")),
                      key=b"ann")
        await _until(lambda: sum(map(len, seen)) >= 2)
        await asyncio.sleep(0.05)
        assert 0 not in acked and 3 not in acked  # side effects done, deliveries pending: not acked
        gate.set()
        await _until(lambda: len(emitted) >= 2 and 3 in acked)
    assert sorted(acked) == [0, 1, 2, 3]
    names = [n for batch in seen for n, _ in batch]
    assert names == ["PostCreated", "PostDeleted"]
    assert sorted(dead) == ["DecodeError", "PoisonRecord"]
    offsets = [o for batch in seen for _, o in batch]
    assert [e["source_offset"] for e in emitted] == offsets
    assert all(e["source_topic"] == "posts.v1" and e["op"] == "ADD" for e in emitted)
    assert [e["reader_id"] for e in emitted] == [f"reader-of-{o}" for o in offsets]


async def test_graph_app_dead_letters_unknown_records_and_processes_edges(tmp_path, monkeypatch):
    seen: list = []
    emitted: list = []
    dead: list = []

    async def fake_dlq(app_, serde_, dlq, group, message, exc):
        dead.append(type(exc).__name__)

    monkeypatch.setattr(rt, "send_dead_letter", fake_dlq)
    app, serde = _apps(tmp_path, graph_app, seen, emitted)
    agent = app.agents["graph-edges"]
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("Followed", sample_event("Followed")), key=b"e", wait=False)
        await ctx.put(serde.encode("PostCreated", sample_event("PostCreated"), "graph.v1"), key=b"e", wait=False)
        await ctx.put(serde.encode("Blocked", sample_event("Blocked")), key=b"e")
        await _until(lambda: len(emitted) >= 2)
    assert [n for batch in seen for n, _ in batch] == ["Followed", "Blocked"]
    assert dead == ["UnknownGraphEvent"]
    assert {e["source_topic"] for e in emitted} == {"graph.v1"} and len(emitted) == 2


async def test_failing_batch_crashes_loudly_and_is_never_acked(tmp_path, monkeypatch):
    app, serde = _apps(tmp_path, fanout_app, [], [], fail=True)
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(app, "crash", crash)
    acked: list[int] = []
    monkeypatch.setattr(rt, "hold_acks", lambda events: (acked.extend(e.message.offset for e in events),
                                                          [setattr(e.message, "acked", True) for e in events]))
    agent = app.agents["fanout-posts"]
    with pytest.raises(RuntimeError, match="store down"):
        async with agent.test_context() as ctx:
            await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k")
            await _until(lambda: bool(crashed))
            await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k")
    assert len(crashed) == 1 and len(acked) >= 1


def test_hold_acks_makes_message_ack_a_no_op():
    class Msg:
        acked = False

        def ack(self, consumer: Any) -> bool:
            return not self.acked

    class Ev:
        message = Msg()

    ev = Ev()
    rt.hold_acks([ev])
    assert ev.message.acked is True
