"""The engagement Faust app under ``agent.test_context()``: dispatch, poison to DLQ, notification values."""

from __future__ import annotations

import asyncio
from typing import Any

from support.serde import mock_serde

from core.settings import Settings
from streams.samples import sample_event
from topologies import faust_runtime
from topologies.engagement.app import create_app, notification_value
from topologies.engagement.logic import graph_notification


def _app(tmp_path, seen: list) -> tuple[Any, Any]:
    serde = mock_serde()

    async def handler(batch: list) -> None:
        seen.extend((e.name, e.value["post_id"], e.value["user_id"]) for e in batch)

    app = create_app(Settings(state_dir=tmp_path), app_id=f"unit-eng-{id(seen)}", serde=serde,
                     process=handler, broker="kafka://127.0.0.1:1")
    return app, serde


async def test_engagement_records_reach_the_handler_and_poison_is_dead_lettered(tmp_path, monkeypatch):
    seen: list = []
    dead: list = []

    async def fake_dlq(app_, serde_, dlq, group, message, exc):
        dead.append((message.value, type(exc).__name__))

    monkeypatch.setattr(faust_runtime, "send_dead_letter", fake_dlq)
    app, serde = _app(tmp_path, seen)
    agent = app.agents["engagement-events"]
    like = sample_event("Liked", post_id=42, user_id="bob", post_author_id="ann")
    wrong = sample_event("PostDeleted", post_id=42, author_id="ann")
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("Liked", like), key=b"42")
        await ctx.put(b"not avro", key=b"42")
        await ctx.put(serde.encode("PostDeleted", wrong, "engagements.v1"), key=b"42")
        await ctx.put(serde.encode("Unliked", {**like, "event_id": "e2"}), key=b"42")
        for _ in range(200):  # the batch runs in the agent's background task
            if len(seen) == 2 and len(dead) == 2:
                break
            await asyncio.sleep(0.01)
    assert seen == [("Liked", 42, "bob"), ("Unliked", 42, "bob")]
    assert [d[1] for d in dead] == ["DecodeError", "PoisonRecord"]


def test_notification_value_encodes_with_the_schema() -> None:
    note = graph_notification("FriendRequestSent", {"event_id": "x", "occurred_at": 5, "from_id": "a",
                                                    "to_id": "b"})
    assert note is not None
    serde = mock_serde()
    out = serde.decode(serde.encode("Notification", notification_value(note), "notifications.v1"))
    assert (out.value["kind"], out.value["recipient_id"], out.value["actor_id"]) == ("FRIEND_REQUEST", "b", "a")
    assert out.value["notification_id"] == note.notification_id


async def test_batches_are_acked_only_after_the_handler_and_a_crash_acks_nothing(tmp_path, monkeypatch):
    from faust.types.tuples import Message

    acked: list[int] = []
    crashed: list[BaseException] = []
    release = asyncio.Event()

    def on_final_ack(message, consumer) -> bool:
        acked.append(message.offset)
        message.acked = True
        return True

    monkeypatch.setattr(Message, "on_final_ack", on_final_ack)
    serde = mock_serde()
    calls: list[list[str]] = []

    async def handler(batch: list) -> None:
        calls.append([e.value["user_id"] for e in batch])
        if "boom" in calls[-1]:
            raise RuntimeError("boom")
        await release.wait()

    app = create_app(Settings(state_dir=tmp_path), app_id=f"unit-eng-ack-{id(calls)}", serde=serde,
                     process=handler, broker="kafka://127.0.0.1:1")

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(app, "crash", crash)
    agent = app.agents["engagement-events"]

    def like(user: str) -> bytes:
        return serde.encode("Liked", sample_event("Liked", post_id=1, user_id=user, post_author_id="a"))

    async with agent.test_context() as ctx:
        await ctx.put(like("a"), key=b"1", wait=False)
        for _ in range(200):
            if calls:
                break
            await asyncio.sleep(0.01)
        assert calls == [["a"]] and acked == []  # handler running: not acked
        await ctx.put(like("b"), key=b"1", wait=False)
        await ctx.put(like("boom"), key=b"1", wait=False)
        await asyncio.sleep(0.05)
        assert acked == []
        release.set()  # first batch done -> acked; the next batch (b, boom) crashes unacked
        for _ in range(200):
            if crashed:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    assert calls[0] == ["a"] and calls[1] == ["b", "boom"]
    assert len(crashed) == 1 and acked == [0]
