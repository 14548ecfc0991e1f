"""Test helpers for the API: an in-process app on a real stack, and a tail that decodes a topic's new events."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient

from core.settings import Settings, with_overrides
from serving.app import create_app
from serving.auth import mint_token
from stores import redis as redis_store
from stores.users import k_registered
from streams.serde import Decoded, Serde

SECRET = "integration-secret-integration-secret-0123"


def api_settings(stack: Settings, **overrides: Any) -> Settings:
    """API settings on the test stack with a real secret."""
    return with_overrides(stack, jwt_secret=SECRET, **overrides)


@contextmanager
def running_app(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan running (real producer and Redis client)."""
    with TestClient(create_app(settings)) as client:
        yield client


def new_user(registered_on: Settings | None = None) -> str:
    """A fresh user id; with ``registered_on``, registered there as ``POST /v1/users`` records it (the mark
    :mod:`serving.registration` checks first: writes need a registered caller and follow targets), for
    tests about other things. Tests of registration itself go through the API (:func:`register`)."""
    user = f"u{uuid.uuid4().hex[:12]}"
    if registered_on is not None:
        redis_store.client(registered_on).set(k_registered(user), "1", ex=registered_on.api_registered_ttl_s)
    return user


def bearer(settings: Settings, user: str) -> dict[str, str]:
    """The Authorization header of ``user`` (a token signed with ``settings``' secret)."""
    return {"Authorization": f"Bearer {mint_token(user, settings)}"}


class TopicTail:
    """Read the records a topic receives after construction, decoded through the registry."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.serde = Serde(settings.registry_url)
        self.consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"t-{uuid.uuid4()}",
                                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.start = []
        for p in sorted(meta.partitions):
            _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            self.start.append(TopicPartition(topic, p, high))
        self.consumer.assign(self.start)
        self.seen: list[Decoded] = []
        self.keys: list[bytes | None] = []

    def read(self, until: float) -> None:
        """Read and decode at most one new record, polling until ``until`` (monotonic time)."""
        while time.monotonic() < until:
            msg = self.consumer.poll(0.2)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            self.seen.append(self.serde.decode(msg.value()))
            self.keys.append(msg.key())
            return

    def find(self, event_id: str, timeout: float = 20.0) -> tuple[Decoded, bytes | None]:
        """Return the decoded event with ``event_id`` and its key; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for decoded, key in zip(self.seen, self.keys):
                if decoded.value["event_id"] == event_id:
                    return decoded, key
            self.read(deadline)
        raise AssertionError(f"event {event_id} not on {self.topic} within {timeout}s ({len(self.seen)} seen)")

    def drain(self, seconds: float) -> list[Decoded]:
        """Everything received within ``seconds`` from now (plus what was already read)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.read(deadline)
        return list(self.seen)

    def close(self) -> None:
        self.consumer.close()


def register(client: TestClient, settings: Settings, *users: str) -> None:
    """Register ``users`` through the API (writes need a registered caller)."""
    for user in users:
        r = client.post("/v1/users", json={"user_id": user, "handle": user, "display_name": user.title()},
                        headers=bearer(settings, user))
        assert r.status_code == 202, r.text


def uid(tag: str) -> str:
    """A fresh id starting with ``tag`` (tests share one stack: never reuse an id)."""
    return f"{tag}{uuid.uuid4().hex[:10]}"


class ActingClient:
    """A thin client acting as any user through the in-process API (tokens minted with the test secret).

    ``r``: a Redis client on ``store`` (the settings the topologies write with), when given.
    """

    def __init__(self, client: TestClient, settings: Settings, store: Settings | None = None) -> None:
        self.c, self.settings = client, settings
        self.r = redis_store.client(store) if store is not None else None

    def h(self, user: str, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(user, self.settings, roles=roles)}"}

    def ok(self, r: Any, code: int = 202) -> Any:
        assert r.status_code == code, (r.status_code, r.text)
        return r.json()

    def register(self, user: str, display_name: str | None = None) -> str:
        self.ok(self.c.post("/v1/users", json={"user_id": user, "handle": user,
                                               "display_name": display_name or user}, headers=self.h(user)))
        return user
