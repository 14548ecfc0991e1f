"""Unit test (issue 14 item 19): closing an EventProducer destroys its librdkafka client, so no
client threads are left reconnecting to a stopped broker (the ``Connection refused`` noise at the
end of a test run). No broker is needed: the client points at a closed loopback port."""

from __future__ import annotations

import os
import time

from support.ports import closed_port

from core.settings import Settings
from streams.producer import EventProducer


def threads() -> int:
    return len(os.listdir("/proc/self/task"))  # native librdkafka threads included


def test_close_destroys_the_client_and_its_threads() -> None:
    before = threads()
    p = EventProducer(Settings(kafka_port=closed_port()), serde=object())  # type: ignore[arg-type]
    assert threads() > before  # librdkafka's broker threads and the poll thread
    p.close(timeout_s=0.5)
    deadline = time.monotonic() + 10
    while threads() > before and time.monotonic() < deadline:  # destroy joins them; allow a beat
        time.sleep(0.05)
    assert threads() <= before  # (another test's leftover thread may end meanwhile)
    assert not p._poller.is_alive()
    p.close()  # idempotent
