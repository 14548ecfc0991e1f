"""503 with Retry-After when Kafka or Redis is down, and nothing half-sent (own engines, stopped here)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support.api import TopicTail, api_settings, bearer, new_user, running_app

from core.settings import Settings
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
    own = api_settings(stack, state_dir=tmp_path, kafka_port=_free_port(), kafka_controller_port=_free_port(),
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


def test_kafka_down_is_503_with_retry_after_and_nothing_half_sent(own_kafka: Settings) -> None:
    settings = own_kafka
    user = new_user(settings)
    h = bearer(settings, user)
    with running_app(settings) as client:
        ok = client.post("/v1/posts", json={"text": "before"}, headers=h)
        assert ok.status_code == 202, ok.text
        local_stack.down(settings, ["kafka"], echo=_quiet)

        t0 = time.monotonic()
        r = client.post("/v1/posts", json={"text": "during"}, headers={**h, "Idempotency-Key": "k1"})
        took = time.monotonic() - t0
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "3"
        assert "event log unavailable" in r.json()["detail"]
        assert took < 3 + 5, f"503 took {took:.1f}s"
        f = client.put(f"/v1/users/{user}/following/{new_user(settings)}", headers=h)
        assert f.status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"].startswith("down")
        # the failed request released its Idempotency-Key (a retry runs again at once, with the same
        # event and post ids, in case the broker kept the event) and its ownership claim
        r_ = redis.Redis.from_url(settings.redis_url)
        held = json.loads(r_.get(f"idem:{user}:k1"))
        assert held["state"] == "pending" and held["lease"] == 0
        assert not r_.exists(f"postowner:{held['ids']['post_id']}")

    local_stack.up(settings, ["kafka"], echo=_quiet)  # same data dir: what did the broker keep?
    tail = TopicTail(settings, "posts.v1")
    tail.start = [type(p)(p.topic, p.partition, 0) for p in tail.start]
    tail.consumer.assign(tail.start)
    mine = [d.value["text"] for d in tail.drain(4.0) if d.value["actor_id"] == user]
    tail.close()
    assert mine == ["before"]


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
