"""Unit tests of the shared Faust glue: decode, handler call, dead-letter on poison, crash on bugs."""

from __future__ import annotations

from typing import Any

import pytest
from support.serde import mock_serde

from core.settings import Settings
from streams.samples import sample_event
from topologies import faust_runtime as rt


def _app(tmp_path, handler, sent: list[tuple[Any, Any]]):
    settings = Settings(state_dir=tmp_path)
    app = rt.create_faust_app(settings, "unit", app_id=f"unit-{id(sent)}", broker="kafka://127.0.0.1:1")
    serde = mock_serde()
    source = app.topic("posts.v1", key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw")

    async def fake_dlq(app_, serde_, dlq, group, message, exc):
        sent.append((message, exc))

    agent = rt.register_agent(app, source, handler, serde=serde, name="unit-agent")
    return app, agent, serde, fake_dlq


async def test_decodes_and_calls_handler_then_dead_letters_poison(tmp_path, monkeypatch):
    seen: list[rt.SourceRecord] = []
    sent: list = []

    async def handler(rec: rt.SourceRecord) -> None:
        seen.append(rec)

    app, agent, serde, fake_dlq = _app(tmp_path, handler, sent)
    monkeypatch.setattr(rt, "send_dead_letter", fake_dlq)
    post = sample_event("PostCreated", author_id="ann", post_id=12345)
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("PostCreated", post), key=b"ann")
        await ctx.put(b"\x07garbage", key=b"ann")
        await ctx.put(serde.encode("PostCreated", {**post, "post_id": 777}), key=b"ann")
    assert [r.value["post_id"] for r in seen] == [12345, 777]
    assert seen[0].name == "PostCreated" and seen[0].value["author_id"] == "ann"
    assert len(sent) == 1 and sent[0][0].value == b"\x07garbage"
    assert type(sent[0][1]).__name__ == "DecodeError"


async def test_poison_from_handler_is_dead_lettered(tmp_path, monkeypatch):
    sent: list = []

    async def handler(rec: rt.SourceRecord) -> None:
        from streams.errors import PoisonRecord
        raise PoisonRecord("unprocessable")

    app, agent, serde, fake_dlq = _app(tmp_path, handler, sent)
    monkeypatch.setattr(rt, "send_dead_letter", fake_dlq)
    async with agent.test_context() as ctx:
        await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k")
    assert len(sent) == 1 and str(sent[0][1]) == "unprocessable"


async def test_unexpected_exception_crashes_loudly(tmp_path, monkeypatch):
    sent: list = []

    async def handler(rec: rt.SourceRecord) -> None:
        raise RuntimeError("bug")

    app, agent, serde, fake_dlq = _app(tmp_path, handler, sent)
    monkeypatch.setattr(rt, "send_dead_letter", fake_dlq)
    crashed: list[BaseException] = []

    async def crash(exc: BaseException) -> None:
        crashed.append(exc)

    monkeypatch.setattr(app, "crash", crash)
    with pytest.raises(RuntimeError, match="bug"):
        async with agent.test_context() as ctx:
            await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k")
            await ctx.put(serde.encode("PostCreated", sample_event("PostCreated")), key=b"k")
    assert sent == [] and len(crashed) == 1


def test_dead_letter_value_matches_schema():
    from core.events import dead_letter

    dl = dead_letter(group="g", topic="posts.v1", partition=2, offset=41, key=b"k", value=b"\x00",
                     error="boom " * 1000, error_type="ValueError")
    assert len(dl["error"]) == 2000 and dl["consumer_group"] == dl["actor_id"] == "g"
    serde = mock_serde()
    out = serde.decode(serde.encode("DeadLetter", dl, "dead-letters.v1"))
    assert out.value["source_offset"] == 41 and out.value["error_type"] == "ValueError"


def test_aiokafka_reads_lz4_natively():
    # producers compress with lz4; Faust (aiokafka) decodes it through cramjam from requirements.lock
    from aiokafka import codec

    assert codec.has_lz4()
    assert codec.lz4_decode(codec.lz4_encode(b"feed" * 100)) == b"feed" * 100
