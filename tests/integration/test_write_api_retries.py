"""Issue #13 defect 5: a retry after the crash window (event in Kafka, response not recorded) finds the
first event: same event id and minted ids, no second copy in the log (the retry reads the log before
producing), never a 503 for a written event, and claims that survive a Redis loss (Cassandra)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from redis.exceptions import ConnectionError as RedisConnectionError
from support.api import TopicTail, api_settings, bearer, new_user, running_app

from core.settings import Settings
from serving import idempotency
from stores.requests import K_CLAIMS_SINCE
from streams.admin import apply_topics


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    apply_topics(stack)
    return api_settings(stack, api_rate_user_burst=1000, api_rate_ip_burst=100_000, api_rate_ip_per_s=10_000,
                        api_idempotency_pending_s=30)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings) as c:
        yield c


@pytest.fixture()
def redis_fails_to_record_once(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Recording the response fails once, after Kafka confirmed (Redis failing, or the API dying there)."""
    failed: list[str] = []
    real = idempotency.IdempotencyStore.complete

    async def complete(self, key, fp, status, body):
        if not failed:
            failed.append(key)
            raise RedisConnectionError("injected: Redis lost between produce and record")
        return await real(self, key, fp, status, body)

    monkeypatch.setattr(idempotency.IdempotencyStore, "complete", complete)
    return failed


class _SetFails:
    """A Redis client whose SET fails (the rest passes through)."""

    def __init__(self, real) -> None:
        self.real = real

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    async def set(self, *args, **kwargs):
        raise RedisConnectionError("injected: Redis lost between produce and record")

    async def evalsha(self, *args, **kwargs):  # the write's last call, which carries that SET
        raise RedisConnectionError("injected: Redis lost between produce and record")


@pytest.fixture()
def redis_set_fails_once_at_complete(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The real ``complete`` runs once with Redis failing (its Cassandra write goes through)."""
    failed: list[str] = []
    real = idempotency.IdempotencyStore.complete

    async def complete(self, key, fp, status, body):
        if failed:
            return await real(self, key, fp, status, body)
        failed.append(key)
        self.redis = _SetFails(self.redis)
        return await real(self, key, fp, status, body)

    monkeypatch.setattr(idempotency.IdempotencyStore, "complete", complete)
    return failed


def _lease_lapses(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Move the claims' clock past the pending window, as if the first request had died that long ago."""
    real = idempotency._now_ms
    monkeypatch.setattr(idempotency, "_now_ms", lambda: real() + settings.api_idempotency_pending_s * 1000 + 1)


def _same(a, b) -> bool:
    """The same 202, but for the consistency token: a re-produced event lands at a later offset."""
    def strip(r) -> dict:
        return {k: v for k, v in r.json().items() if k != "consistency_token"}
    return strip(a) == strip(b)


def _mine(tail: TopicTail, user: str) -> list:
    return [d for d in tail.drain(3.0) if d.value["actor_id"] == user]


def test_written_like_is_202_even_if_recording_fails_and_its_retry_is_the_same_event(
        client: TestClient, settings: Settings, redis_fails_to_record_once, monkeypatch) -> None:
    author, fan = new_user(settings), new_user(settings)
    post = client.post("/v1/posts", json={"text": "like me"}, headers=bearer(settings, author))
    assert post.status_code == 202, post.text
    pid = post.json()["post_id"]
    tail = TopicTail(settings, "engagements.v1")
    h = {**bearer(settings, fan), "Idempotency-Key": "like-1"}
    first = client.put(f"/v1/posts/{pid}/like", headers=h)
    assert redis_fails_to_record_once
    assert first.status_code == 202, first.text  # written to Kafka: never 503
    assert client.put(f"/v1/posts/{pid}/like", headers=h).status_code == 409  # its claim is still held
    _lease_lapses(monkeypatch, settings)
    again = client.put(f"/v1/posts/{pid}/like", headers=h)
    assert again.status_code == 202, again.text
    assert _same(again, first)
    replayed = client.put(f"/v1/posts/{pid}/like", headers=h)
    assert _same(replayed, first) and replayed.headers["idempotent-replayed"] == "true"
    mine = _mine(tail, fan)
    tail.close()
    assert [d.value["event_id"] for d in mine] == [first.json()["event_id"]]  # once: the retry read the log


def test_comment_retried_after_the_crash_window_keeps_its_comment_id(
        client: TestClient, settings: Settings, redis_fails_to_record_once, monkeypatch) -> None:
    author, fan = new_user(settings), new_user(settings)
    post = client.post("/v1/posts", json={"text": "comment on me"}, headers=bearer(settings, author))
    pid = post.json()["post_id"]
    tail = TopicTail(settings, "engagements.v1")
    h = {**bearer(settings, fan), "Idempotency-Key": "comment-1"}
    first = client.post(f"/v1/posts/{pid}/comments", json={"text": "nice"}, headers=h)
    assert first.status_code == 202, first.text
    _lease_lapses(monkeypatch, settings)  # the API "died" before recording: the retry comes later
    again = client.post(f"/v1/posts/{pid}/comments", json={"text": "nice"}, headers=h)
    assert again.status_code == 202, again.text
    assert again.json()["comment_id"] == first.json()["comment_id"]
    assert again.json()["event_id"] == first.json()["event_id"]
    mine = _mine(tail, fan)
    tail.close()
    assert [(d.value["event_id"], d.value["comment_id"]) for d in mine] == \
        [(first.json()["event_id"], first.json()["comment_id"])]


def test_post_retried_after_the_crash_window_keeps_its_post_id(
        client: TestClient, settings: Settings, redis_fails_to_record_once, monkeypatch) -> None:
    author = new_user(settings)
    tail = TopicTail(settings, "posts.v1")
    h = {**bearer(settings, author), "Idempotency-Key": "post-1"}
    first = client.post("/v1/posts", json={"text": "once"}, headers=h)
    assert first.status_code == 202, first.text
    _lease_lapses(monkeypatch, settings)
    again = client.post("/v1/posts", json={"text": "once"}, headers=h)
    assert again.status_code == 202, again.text
    assert _same(again, first)
    mine = _mine(tail, author)
    tail.close()
    assert [(d.value["event_id"], d.value["post_id"]) for d in mine] == \
        [(first.json()["event_id"], first.json()["post_id"])]


def _redis_loses_claims(settings: Settings, *keys: str) -> None:
    """What a Redis restart without persistence does to the claims: they and ``idem:since`` are gone."""
    redis.Redis.from_url(settings.redis_url).delete(K_CLAIMS_SINCE, *keys)


def test_a_retry_across_a_redis_loss_replays_the_first_answer_from_cassandra(
        client: TestClient, settings: Settings) -> None:
    """Issue #13 (kill -9 Redis): the claim was only in Redis, so the retry produced the post again
    (a new post id under the same event id). Completed claims are also kept in Cassandra."""
    author = new_user(settings)
    tail = TopicTail(settings, "posts.v1")
    h = {**bearer(settings, author), "Idempotency-Key": "durable-1"}
    first = client.post("/v1/posts", json={"text": "survives"}, headers=h)
    assert first.status_code == 202, first.text
    _redis_loses_claims(settings, f"idem:{author}:durable-1")
    again = client.post("/v1/posts", json={"text": "survives"}, headers=h)
    assert again.status_code == 202, again.text
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert redis.Redis.from_url(settings.redis_url).get(f"idem:{author}:durable-1") is not None  # re-cached
    other = client.post("/v1/posts", json={"text": "survives"}, headers={**h, "Idempotency-Key": "durable-2"})
    assert other.status_code == 202 and other.json()["post_id"] != first.json()["post_id"]  # a new key is new
    mine = _mine(tail, author)
    tail.close()
    assert [d.value["post_id"] for d in mine] == [first.json()["post_id"], other.json()["post_id"]]


def test_a_retry_across_a_redis_loss_after_redis_failed_to_record_is_written_once(
        client: TestClient, settings: Settings, redis_set_fails_once_at_complete) -> None:
    """Redis fails after Kafka confirmed (202 all the same) and then loses its data: the retry finds
    the Cassandra copy written beside the failed Redis one, and nothing is produced twice."""
    author, fan = new_user(settings), new_user(settings)
    pid = client.post("/v1/posts", json={"text": "like me"}, headers=bearer(settings, author)).json()["post_id"]
    tail = TopicTail(settings, "engagements.v1")
    h = {**bearer(settings, fan), "Idempotency-Key": "like-durable"}
    first = client.put(f"/v1/posts/{pid}/like", headers=h)
    assert redis_set_fails_once_at_complete and first.status_code == 202, first.text
    _redis_loses_claims(settings, f"idem:{fan}:like-durable")
    again = client.put(f"/v1/posts/{pid}/like", headers=h)
    assert again.status_code == 202 and again.json() == first.json(), again.text
    mine = _mine(tail, fan)
    tail.close()
    assert [d.value["event_id"] for d in mine] == [first.json()["event_id"]]


def test_a_retry_of_a_write_still_pending_when_redis_was_lost_finds_the_first_event(
        client: TestClient, settings: Settings, redis_fails_to_record_once, monkeypatch) -> None:
    """Issue #13: the first attempt produced its post, then Redis lost every claim before the attempt
    recorded its answer (it died there). The retry found no claim anywhere, minted a new post id under
    the same event id and wrote a second event. Pending claims are kept in Cassandra before anything is
    produced, so the retry waits for the holder's lease like before the loss, then reads the log."""
    author = new_user(settings)
    tail = TopicTail(settings, "posts.v1")
    h = {**bearer(settings, author), "Idempotency-Key": "pending-at-loss"}
    first = client.post("/v1/posts", json={"text": "pending when Redis went"}, headers=h)
    assert redis_fails_to_record_once and first.status_code == 202, first.text
    _redis_loses_claims(settings, f"idem:{author}:pending-at-loss")
    held = client.post("/v1/posts", json={"text": "pending when Redis went"}, headers=h)
    assert held.status_code == 409, held.text  # the first attempt may still be producing
    _lease_lapses(monkeypatch, settings)
    again = client.post("/v1/posts", json={"text": "pending when Redis went"}, headers=h)
    assert again.status_code == 202, again.text
    assert _same(again, first)
    mine = _mine(tail, author)
    tail.close()
    assert [(d.value["event_id"], d.value["post_id"]) for d in mine] == \
        [(first.json()["event_id"], first.json()["post_id"])]
