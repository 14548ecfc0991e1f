"""The engagement Faust app under ``agent.test_context()``: dispatch, poison to DLQ, notification values."""

from __future__ import annotations

from typing import Any

from feedstream.settings import Settings
from streams.testing import mock_serde, sample_event
from topologies import faust_runtime as rt
from topologies.engagement.app import create_app, notification_value
from topologies.engagement.logic import graph_notification


def _app(tmp_path, seen: list) -> tuple[Any, Any]:
    serde = mock_serde()

    async def handler(name: str, value: dict, partition: int, offset: int) -> None:
        seen.append((name, value["post_id"], value["user_id"]))

    app = create_app(Settings(state_dir=tmp_path), app_id=f"unit-eng-{id(seen)}", serde=serde,
                     engagement_handler=handler, broker="kafka://127.0.0.1:1")
    return app, serde


async def test_engagement_records_reach_the_handler_and_poison_is_dead_lettered(tmp_path, monkeypatch):
    seen: list = []
    dead: list = []

    async def fake_dlq(app_, serde_, dlq, group, message, exc):
        dead.append((message.value, type(exc).__name__))

    monkeypatch.setattr(rt, "send_dead_letter", fake_dlq)
    app, serde = _app(tmp_path, seen)
    agent = app.agents["engagement-events"]
    like = sample_event("Liked", post_id=42, user_id="bob", post_author_id="ann")
    wrong = sample_event("PostDeleted", post_id=42, author_id="ann")
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("Liked", like), key=b"42")
        await ctx.put(b"not avro", key=b"42")
        await ctx.put(serde.encode("PostDeleted", wrong, "engagements.v1"), key=b"42")
        await ctx.put(serde.encode("Unliked", {**like, "event_id": "e2"}), key=b"42")
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
