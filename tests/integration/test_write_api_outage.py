"""Kafka or Redis down: 503 (not written) or 504 (outcome unknown) with Retry-After, never a second copy."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support.api import TopicTail, api_settings, bearer, new_user, running_app
from support.ports import free_ports

from core.settings import Settings, with_overrides
from ops.local import procs
from ops.local import stack as local_stack
from streams.admin import apply_topics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _quiet(*_: object) -> None:
    pass


@pytest.fixture()
def own_kafka(stack: Settings, tmp_path: Path) -> Iterator[Settings]:
    """API settings whose Kafka is a single broker of our own (registry and Redis are the shared ones)."""
    kafka, controller = free_ports(2)  # two one-at-a-time picks once returned the same port
    own = api_settings(stack, state_dir=tmp_path, kafka_port=kafka, kafka_controller_port=controller,
                       kafka_heap_mb=384, api_produce_timeout_ms=3000, api_retry_after_s=3)
    local_stack.up(own, ["kafka"], echo=_quiet)
    try:
        apply_topics(own)
        yield own
    finally:
        local_stack.down(own, ["kafka"], echo=_quiet)


@pytest.fixture()
def own_redis(stack: Settings, tmp_path: Path) -> Iterator[Settings]:
    """API settings whose Redis is our own (Kafka and registry are the shared ones)."""
    own = api_settings(stack, state_dir=tmp_path, redis_port=_free_port())
    local_stack.up(own, ["redis"], echo=_quiet)
    try:
        yield own
    finally:
        local_stack.down(own, ["redis"], echo=_quiet)


def _log_of(settings: Settings, user: str, topic: str = "posts.v1", seconds: float = 4.0) -> list[dict]:
    """``user``'s events on ``topic`` from offset 0."""
    tail = TopicTail(settings, topic)
    tail.start = [type(p)(p.topic, p.partition, 0) for p in tail.start]
    tail.consumer.assign(tail.start)
    mine = [d.value for d in tail.drain(seconds) if d.value["actor_id"] == user]
    tail.close()
    return mine


def _retry_until_settled(client, path: str, body: dict, headers: dict, within_s: float = 60.0):
    """Retry like a good client (same key) while the outcome is unknown (504)."""
    deadline = time.monotonic() + within_s
    while True:
        r = client.post(path, json=body, headers=headers)
        if r.status_code != 504 or time.monotonic() > deadline:
            return r
        time.sleep(int(r.headers["retry-after"]))


def test_kafka_down_is_unknown_never_503_and_the_retry_writes_it_once(own_kafka: Settings) -> None:
    """Issue #13: a record routed to a partition may be on its way when the deadline passes, so the
    answer is 504 "outcome unknown" (not 503 "not written"); the retry with the same key learns it."""
    settings = own_kafka
    user = new_user(settings)
    h = bearer(settings, user)
    with running_app(settings) as client:
        ok = client.post("/v1/posts", json={"text": "before"}, headers=h)
        assert ok.status_code == 202, ok.text
        local_stack.down(settings, ["kafka"], echo=_quiet)

        r = client.post("/v1/posts", json={"text": "during"}, headers={**h, "Idempotency-Key": "k1"})
        assert r.status_code == 504, r.text
        assert r.headers["retry-after"] == "3"
        assert "outcome is unknown" in r.json()["detail"]
        # a topic this producer never wrote to has no partition to send to: certainly not written
        f = client.put(f"/v1/users/{user}/following/{new_user(settings)}", headers=h)
        assert f.status_code == 503 and "event log unavailable" in f.json()["detail"], f.text
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"].startswith("down")
        # the claim keeps its ids, marked in doubt: a retry reads the log before producing again
        r_ = redis.Redis.from_url(settings.redis_url)
        held = json.loads(r_.get(f"idem:{user}:k1"))
        assert held["state"] == "pending" and held["lease"] == 0 and "in_doubt" in held["ids"]
        again = client.post("/v1/posts", json={"text": "during"}, headers={**h, "Idempotency-Key": "k1"})
        assert again.status_code == 504, again.text  # still unknown: nothing produced meanwhile

        local_stack.up(settings, ["kafka"], echo=_quiet)  # same data dir
        done = _retry_until_settled(client, "/v1/posts", {"text": "during"}, {**h, "Idempotency-Key": "k1"})
        assert done.status_code == 202, done.text
        assert done.json()["post_id"] == held["ids"]["post_id"]
    assert [v["text"] for v in _log_of(settings, user)] == ["before", "during"]


def test_a_write_sent_to_a_stalled_kafka_is_504_and_lands_in_the_log_once(own_kafka: Settings) -> None:
    """Issue #13 (kill -9 Kafka): a produce request the broker receives but answers after the API's
    deadline is written later. It used to be answered 503 and re-produced by the retry (2-3 copies
    of one event in the log, and events nobody acknowledged); now 504, and the retry finds it."""
    settings = with_overrides(own_kafka, api_produce_timeout_ms=1500)
    user = new_user(settings)
    h = bearer(settings, user)
    kafka = procs.read_pidfile(local_stack.pid_path(settings, "kafka"))
    assert kafka is not None
    with running_app(settings) as client:
        assert client.post("/v1/posts", json={"text": "warm"}, headers=h).status_code == 202
        os.kill(kafka.pid, signal.SIGSTOP)  # the request reaches the socket; the broker answers late
        try:
            r = client.post("/v1/posts", json={"text": "stalled"}, headers={**h, "Idempotency-Key": "s1"})
        finally:
            os.kill(kafka.pid, signal.SIGCONT)
        assert r.status_code == 504, r.text
        assert "retry with the same Idempotency-Key" in r.json()["detail"]
        done = _retry_until_settled(client, "/v1/posts", {"text": "stalled"}, {**h, "Idempotency-Key": "s1"})
        assert done.status_code == 202, done.text
        replay = client.post("/v1/posts", json={"text": "stalled"}, headers={**h, "Idempotency-Key": "s1"})
        assert replay.json() == done.json()
    stalled = [v for v in _log_of(settings, user, seconds=6.0) if v["text"] == "stalled"]
    assert [v["event_id"] for v in stalled] == [done.json()["event_id"]]  # once: not re-produced


def test_redis_down_is_503_with_retry_after(own_redis: Settings) -> None:
    settings = own_redis
    user, other = new_user(settings), new_user(settings)
    with running_app(settings) as client:
        h = bearer(settings, user)
        assert client.put(f"/v1/users/{user}/following/{other}", headers=h).status_code == 202
        local_stack.down(settings, ["redis"], echo=_quiet)
        r = client.put(f"/v1/users/{user}/following/{other}", headers=h)
        assert r.status_code == 503, r.text
        assert int(r.headers["retry-after"]) >= 1
        assert "redis unavailable" in r.json()["detail"]
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("down")
        assert client.get("/healthz").status_code == 200
