"""Who may write what (issue #14 items 2, 5): engagements need a post the caller may see, writes need a
registered caller, and reads have their own rate limits (item 3)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import TopicTail, api_settings, bearer, new_user, register, running_app

from core.settings import Settings
from stores import graph
from stores import redis as redis_store
from stores import timelines as tls
from streams.admin import apply_topics

ENGAGE = [("put", "/like", None), ("put", "/reactions/WOW", None), ("post", "/shares", {"comment": "look"}),
          ("post", "/comments", {"text": "nice"})]


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    apply_topics(stack)
    return api_settings(stack, api_rate_user_burst=1000, api_rate_ip_burst=100_000, api_rate_ip_per_s=10_000)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings) as c:
        yield c


@pytest.fixture()
def engagements(stack: Settings) -> Iterator[TopicTail]:
    tail = TopicTail(stack, "engagements.v1")
    yield tail
    tail.close()


def accepted(r) -> dict[str, Any]:
    assert r.status_code == 202, r.text
    return r.json()


def _engage(client: TestClient, settings: Settings, user: str, pid: int, method: str, path: str, body) -> Any:
    kwargs = {"json": body} if body is not None else {}
    return getattr(client, method)(f"/v1/posts/{pid}{path}", headers=bearer(settings, user), **kwargs)


def _no_events_from(tail: TopicTail, client: TestClient, settings: Settings, author: str, pid: int, fan: str) -> None:
    """The author's own like is keyed like the fan's engagements (by post): once it is read, nothing of the
    fan's came before it."""
    sentinel = accepted(client.put(f"/v1/posts/{pid}/like", headers=bearer(settings, author)))
    tail.find(sentinel["event_id"])
    assert [d.name for d in tail.seen if d.value["actor_id"] == fan and d.value["post_id"] == pid] == []


@pytest.mark.parametrize("visibility", ["FRIENDS", "FOLLOWERS"])
def test_engaging_with_a_post_hidden_by_its_visibility_is_403_with_no_event(
        client: TestClient, settings: Settings, engagements: TopicTail, visibility: str) -> None:
    author, fan = new_user(), new_user()
    register(client, settings, author, fan)
    pid = accepted(client.post("/v1/posts", json={"text": "inner circle", "visibility": visibility},
                               headers=bearer(settings, author)))["post_id"]
    for method, path, body in ENGAGE:
        r = _engage(client, settings, fan, pid, method, path, body)
        assert r.status_code == 403, (path, r.text)
    _no_events_from(engagements, client, settings, author, pid, fan)
    # once the graph view has the fan as a follower / friend, the same writes are accepted
    redis_store.client(settings).sadd(graph.k_friends(author) if visibility == "FRIENDS"
                                      else graph.k_followers(author), fan)
    for method, path, body in ENGAGE:
        accepted(_engage(client, settings, fan, pid, method, path, body))


def test_engaging_with_the_post_of_an_author_who_blocked_you_is_403_but_retracting_is_not(
        client: TestClient, settings: Settings, engagements: TopicTail) -> None:
    author, fan = new_user(), new_user()
    register(client, settings, author, fan)
    pid = accepted(client.post("/v1/posts", json={"text": "public"}, headers=bearer(settings, author)))["post_id"]
    accepted(_engage(client, settings, fan, pid, "put", "/like", None))  # before the block
    redis_store.client(settings).sadd(tls.k_negative(fan), author)  # the graph view of author blocking fan
    for method, path, body in ENGAGE:
        assert _engage(client, settings, fan, pid, method, path, body).status_code == 403, path
    # withdrawing one's own like stays possible
    unliked = accepted(_engage(client, settings, fan, pid, "delete", "/like", None))
    engagements.find(unliked["event_id"])
    assert [d.name for d in engagements.seen if d.value["actor_id"] == fan] == ["Liked", "Unliked"]


def test_engaging_with_a_missing_or_deleted_post_is_404(client: TestClient, settings: Settings) -> None:
    author, fan = new_user(), new_user()
    register(client, settings, author, fan)
    pid = accepted(client.post("/v1/posts", json={"text": "soon gone"}, headers=bearer(settings, author)))["post_id"]
    accepted(client.delete(f"/v1/posts/{pid}", headers=bearer(settings, author)))
    for method, path, body in ENGAGE:
        assert _engage(client, settings, fan, pid, method, path, body).status_code == 404, path
        assert _engage(client, settings, fan, 4242, method, path, body).status_code == 404, path


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_engaging_when_no_engine_can_check_visibility_is_503_with_retry_after(stack: Settings) -> None:
    settings = api_settings(stack, cassandra_port=_dead_port(), api_rate_limit_enabled=False, api_retry_after_s=4)
    author, fan = new_user(), new_user()
    with running_app(settings) as client:
        register(client, settings, author, fan)
        pid = accepted(client.post("/v1/posts", json={"text": "x", "visibility": "FOLLOWERS"},
                                   headers=bearer(settings, author)))["post_id"]
        client.app.state.reads.redis_breaker.allow = lambda: False  # the read side's Redis is down
        r = _engage(client, settings, fan, pid, "put", "/like", None)
    assert r.status_code == 503, r.text
    assert r.headers["Retry-After"] == "4"
