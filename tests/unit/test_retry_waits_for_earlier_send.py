"""Issue 13, defect 5 under a long Kafka outage: a retry of an Idempotency-Key whose first attempt is
still held by this API's producer (queued or in flight, so not in the log yet) waits for that
attempt's delivery report instead of reading the log and producing a second copy.

The producer tests use a real librdkafka client on a closed loopback port (no broker); the write
tests drive :class:`serving.writes.Write` with a producer double that records what it produces.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from support.ports import closed_port

from core.settings import Settings
from serving.idempotency import IN_DOUBT
from serving.writes import Write
from streams.errors import DeliveryError, DeliveryInDoubt
from streams.producer import DeliveryReport, EventProducer
from streams.serde import Serde


class _OfflineSerde(Serde):
    def encode(self, record: str, value: Any, topic: str | None = None) -> bytes:  # type: ignore[override]
        return b"\x00\x00\x00\x00\x01payload"


def test_the_producer_knows_an_unsettled_send_by_event_id_until_its_report() -> None:
    settings = Settings(kafka_port=closed_port())
    p = EventProducer(settings, serde=_OfflineSerde("http://127.0.0.1:1"),
                      config={"delivery.timeout.ms": 1500, "linger.ms": 0})
    try:
        like = {"event_id": "e-1", "occurred_at": 1, "actor_id": "u1", "schema_version": 1,
                "post_id": 7, "post_author_id": "u2", "user_id": "u1"}
        sent = p.submit("Liked", like)
        assert p.outstanding("e-1") is sent and not sent.done()
        assert p.outstanding("e-2") is None
        with pytest.raises(DeliveryError):
            sent.result(timeout=15)  # no broker: the delivery times out, surely not written
        deadline = time.monotonic() + 5
        while p.outstanding("e-1") is not None and time.monotonic() < deadline:
            time.sleep(0.01)  # the report's callback clears it right after resolving the future
        assert p.outstanding("e-1") is None
    finally:
        p.close(timeout_s=0.5)


class _Producer:
    """Records sends; ``earlier`` is the unsettled delivery of an earlier attempt, if any."""

    def __init__(self, earlier: Future[DeliveryReport] | None) -> None:
        self.earlier, self.sent = earlier, []

    def outstanding(self, event_id: str) -> Future[DeliveryReport] | None:
        return self.earlier if event_id == "e-1" else None

    def topic_of(self, record: str, value: Any) -> str:
        return "engagements.v1"

    async def send_async(self, record: str, value: Any) -> DeliveryReport:
        self.sent.append(value["event_id"])
        return DeliveryReport("engagements.v1", 0, 99, None, record, 0)

    def find(self, *args: Any) -> None:
        return None  # the log does not show the earlier attempt (it has not arrived)


def _write(producer: _Producer, ids: dict[str, Any] | None = None) -> Write:
    request = SimpleNamespace(method="POST", url=SimpleNamespace(path="/v1/posts/7/likes"))
    w = Write(request, "u1", producer, None, Settings(api_produce_timeout_ms=400), "key-1")  # type: ignore[arg-type]
    w.ids = {"event_id": "e-1", "occurred_at": 1_000, **(ids or {})}
    return w


def _emit(w: Write) -> str:
    return asyncio.run(w.emit("Liked", post_id=7, post_author_id="u2", user_id="u1"))


def _settle_later(future: Future[DeliveryReport], outcome: Any, after_s: float = 0.15) -> None:
    def settle() -> None:
        time.sleep(after_s)
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    threading.Thread(target=settle, daemon=True).start()


def test_a_retry_waits_for_the_earlier_attempt_and_does_not_produce_again() -> None:
    earlier: Future[DeliveryReport] = Future()
    producer = _Producer(earlier)
    _settle_later(earlier, DeliveryReport("engagements.v1", 2, 41, None, "Liked", 0))
    w = _write(producer, {IN_DOUBT: {"p": 2, "at": 0}})  # the log look-up alone would say "not there"
    assert _emit(w) == "e-1"
    assert producer.sent == []  # not a second copy
    assert w.positions == [("engagements.v1", 2, 41)]


def test_a_retry_produces_when_the_earlier_attempt_surely_failed() -> None:
    earlier: Future[DeliveryReport] = Future()
    producer = _Producer(earlier)
    _settle_later(earlier, DeliveryError("refused"))
    assert _emit(_write(producer)) == "e-1"
    assert producer.sent == ["e-1"]


def test_a_retry_whose_earlier_attempt_is_still_open_is_in_doubt_not_produced() -> None:
    producer = _Producer(Future())  # never settles within the produce timeout
    with pytest.raises(DeliveryInDoubt):
        _emit(_write(producer))
    assert producer.sent == []


def test_an_earlier_attempt_settled_in_doubt_sends_the_retry_to_the_log_after_the_settle_time() -> None:
    earlier: Future[DeliveryReport] = Future()
    producer = _Producer(earlier)
    _settle_later(earlier, DeliveryInDoubt("timed out in flight", 2))
    w = _write(producer)
    before = int(time.time() * 1000)
    with pytest.raises(DeliveryInDoubt):  # a request may still be at the broker: not read yet, not produced
        _emit(w)
    assert w.ids[IN_DOUBT]["p"] == 2 and w.ids[IN_DOUBT]["at"] >= before and producer.sent == []
    w.ids[IN_DOUBT]["at"] = 0  # later: the settle time has passed
    producer.earlier = None
    _emit(w)  # the log (find) says not there: produced once
    assert producer.sent == ["e-1"]
