"""Issue #15 item 3: a write's Redis work is one script call before its produce and one after.

The first call (``stores.requests.WRITE_GATE_LUA``) takes the rate-limit tokens, checks the caller's
registration, claims the Idempotency-Key and reads the route's ownership keys; the last
(``WRITE_DONE_LUA``) stores the Idempotency-Key's response, the writer's positions and a new post's
owner. These tests count the commands the API's Redis client sends (each command alone, and each
pipeline, is one round trip) and check that every outcome of the separate steps is kept: 429 with
Retry-After (before any other error, and for invalid requests too), 403 for an unregistered caller,
replays, a reused key, ownership refusals.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from support.api import api_settings, bearer, new_user, running_app

from core.settings import Settings
from serving import registration, writes
from serving.ratelimit import TOKEN_BUCKET_LUA, retry_after_s
from serving.routers import writes_graph
from stores import posts as post_store
from stores import progress
from stores.requests import WRITE_GATE_LUA, k_idempotency
from stores.users import k_registered, k_user
from streams.admin import apply_topics


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    apply_topics(stack)
    return api_settings(stack, api_rate_user_burst=1000, api_rate_ip_burst=100_000, api_rate_ip_per_s=10_000)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings) as c:
        yield c


@pytest.fixture(scope="module")
def r(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url)


class Calls:
    """The round trips the app's asyncio Redis client makes: a command sent alone, or a pipeline."""

    def __init__(self, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[str] = []
        app_redis = client.app.state.redis
        real_command, real_pipeline = app_redis.execute_command, app_redis.pipeline

        async def execute_command(*args: Any, **kwargs: Any) -> Any:
            self.sent.append(str(args[0]).upper())
            return await real_command(*args, **kwargs)

        def pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = real_pipeline(*args, **kwargs)
            real_execute = pipe.execute

            async def execute(*a: Any, **kw: Any) -> Any:
                self.sent.append("PIPELINE " + " ".join(str(c[0][0]).upper() for c in pipe.command_stack))
                return await real_execute(*a, **kw)

            pipe.execute = execute
            return pipe

        monkeypatch.setattr(app_redis, "execute_command", execute_command)
        monkeypatch.setattr(app_redis, "pipeline", pipeline)

    def take(self) -> list[str]:
        out, self.sent = self.sent, []
        return out


@pytest.fixture()
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each time a write asks the profile view whether a user registered (the slow path)."""
    asked: list[str] = []
    real_is, real_target = registration.is_registered, writes_graph.require_target

    async def is_registered(redis_, reads, user_id):
        asked.append(f"caller {user_id}")
        return await real_is(redis_, reads, user_id)

    async def require_target(redis_, reads, user_id):
        asked.append(f"target {user_id}")
        return await real_target(redis_, reads, user_id)

    monkeypatch.setattr(writes, "is_registered", is_registered)
    monkeypatch.setattr(writes_graph, "require_target", require_target)
    return asked


def accepted(res: Any) -> dict[str, Any]:
    assert res.status_code == 202, res.text
    return res.json()


def test_post_like_and_follow_make_one_call_before_the_produce_and_one_after(
        client: TestClient, settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, fallbacks) -> None:
    author, fan = new_user(settings), new_user(settings)
    pid = accepted(client.post("/v1/posts", json={"text": "warm"}, headers=bearer(settings, author)))["post_id"]
    accepted(client.put(f"/v1/posts/{pid}/like", headers=bearer(settings, fan)))  # the scripts are loaded
    # and a first keyed write has started the claims' window (``idem:since``, set once per Redis),
    # whichever test module ran before this one on the session's stack
    accepted(client.post("/v1/posts", json={"text": "warm"}, headers={**bearer(settings, author), "Idempotency-Key": "warm"}))
    calls = Calls(client, monkeypatch)

    h = {**bearer(settings, fan), "Idempotency-Key": "one-call-post"}
    created = accepted(client.post("/v1/posts", json={"text": "counted", "visibility": "FOLLOWERS"}, headers=h))
    assert calls.take() == ["EVALSHA", "EVALSHA"]
    new_pid = created["post_id"]  # the last call recorded the owner, the response and the position
    assert r.get(post_store.k_owner(new_pid)) == fan.encode()
    assert r.get(post_store.k_owner_visibility(new_pid)) == b"FOLLOWERS"
    assert b'"status": 202' in r.get(k_idempotency(fan, "one-call-post"))
    assert r.hgetall(progress.user_key(fan))

    for path, key in ((f"/v1/posts/{pid}/like", None), (f"/v1/posts/{pid}/like", "one-call-like"),
                      (f"/v1/users/{fan}/following/{author}", None),
                      (f"/v1/users/{fan}/following/{author}", "one-call-follow")):
        accepted(client.put(path, headers={**bearer(settings, fan), **({"Idempotency-Key": key} if key else {})}))
        # a like also checks the post is visible to the caller: one pipeline on the event loop once the first
        # call named the author (serving.feed.posts.may_engage_hot), no thread-pool reads
        middle = ["PIPELINE " + " ".join(["SISMEMBER"] * 2 + ["EXISTS"] * 2 + ["SISMEMBER"] * 4)] if "like" in path else []
        assert calls.take() == ["EVALSHA", *middle, "EVALSHA"], path
    assert fallbacks == []

    replay = client.post("/v1/posts", json={"text": "counted", "visibility": "FOLLOWERS"}, headers=h)
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["event_id"] == created["event_id"]
    assert calls.take() == ["EVALSHA"]  # the first call found the stored response


def test_a_user_known_only_to_the_profile_cache_writes_in_one_call(
        client: TestClient, settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch, fallbacks) -> None:
    """Past the registration mark's TTL a user is known by the profile view; its Redis cache
    (``user:{id}``) answers inside the first call, for the caller and for whom they follow."""
    fan, star = new_user(), new_user()
    for u in (fan, star):
        r.hset(k_user(u), mapping={"handle": u, "display_name": u, "created_at": 1})
    accepted(client.put(f"/v1/users/{fan}/following/{star}", headers=bearer(settings, fan)))  # (scripts loaded)
    calls = Calls(client, monkeypatch)
    accepted(client.put(f"/v1/users/{fan}/following/{star}", headers=bearer(settings, fan)))
    assert calls.take() == ["EVALSHA", "EVALSHA"]
    assert fallbacks == []
    assert r.exists(k_registered(fan)) == 0


def test_an_unregistered_caller_is_403_and_claims_nothing(client: TestClient, settings: Settings,
                                                          r: redis.Redis, fallbacks) -> None:
    stranger = new_user()
    h = {**bearer(settings, stranger), "Idempotency-Key": "never"}
    res = client.post("/v1/posts", json={"text": "hi"}, headers=h)
    assert res.status_code == 403 and res.json()["detail"] == registration.REGISTER_FIRST
    assert fallbacks == [f"caller {stranger}"]  # the profile view was asked, then refused
    assert r.exists(k_idempotency(stranger, "never")) == 0
    invalid = client.post("/v1/posts", json={"text": ""}, headers=h)  # registration precedes validation
    assert invalid.status_code == 403, invalid.text


def test_a_reused_key_and_ownership_refusals_answer_as_before(client: TestClient, settings: Settings,
                                                             r: redis.Redis) -> None:
    author, other = new_user(settings), new_user(settings)
    h = {**bearer(settings, author), "Idempotency-Key": "reused"}
    pid = accepted(client.post("/v1/posts", json={"text": "one"}, headers=h))["post_id"]
    reused = client.post("/v1/posts", json={"text": "two"}, headers=h)
    assert reused.status_code == 422 and reused.json()["detail"][0]["type"] == "idempotency_key_reused"

    theirs = client.put(f"/v1/posts/{pid}", json={"text": "mine now"}, headers=bearer(settings, other))
    assert theirs.status_code == 403 and "only the author" in theirs.json()["detail"]
    keyed = {**bearer(settings, other), "Idempotency-Key": "refused"}
    assert client.delete(f"/v1/posts/{pid}", headers=keyed).status_code == 403
    held = r.get(k_idempotency(other, "refused"))  # released, as a failed request's claim is
    assert held is not None and b'"lease": 0' in held
    accepted(client.delete(f"/v1/posts/{pid}", headers=bearer(settings, author)))
    assert client.put(f"/v1/posts/{pid}/like", headers=bearer(settings, other)).status_code == 404
    missing = client.put(f"/v1/users/{other}/following/{new_user()}", headers=bearer(settings, other))
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no user")


def test_the_rate_limit_comes_first_and_every_write_request_takes_a_token(stack: Settings, r: redis.Redis) -> None:
    settings = api_settings(stack, api_rate_user_per_s=0.01, api_rate_user_burst=3)
    user, target = new_user(settings), new_user(settings)
    h = bearer(settings, user)
    with running_app(settings) as client:
        assert client.post("/v1/posts", json={"text": ""}, headers=h).status_code == 422  # takes a token
        self_follow = client.put(f"/v1/users/{user}/following/{user}", headers=h)  # so does this one
        assert self_follow.status_code == 422, self_follow.text
        accepted(client.put(f"/v1/users/{user}/following/{target}", headers=h))
        limited = client.post("/v1/posts", json={"text": "late"}, headers={**h, "Idempotency-Key": "limited"})
        assert limited.status_code == 429, limited.text
        assert limited.json()["detail"].startswith("rate limit exceeded; retry in ")
        assert int(limited.headers["retry-after"]) >= 1
        assert r.exists(k_idempotency(user, "limited")) == 0  # refused before claiming
        # an empty bucket answers 429 before validation and the self check, as the dependency did
        assert client.post("/v1/posts", json={"text": ""}, headers=h).status_code == 429
        assert client.put(f"/v1/users/{user}/following/{user}", headers=h).status_code == 429


def test_the_gate_script_takes_tokens_as_the_rate_limiter_does(r: redis.Redis) -> None:
    """The one script's take() against the limiter's own script, on twin buckets, step by step."""
    limiter, gate = r.register_script(TOKEN_BUCKET_LUA), r.register_script(WRITE_GATE_LUA)
    tag = new_user()
    a, b = [f"rl:user:{tag}-a", f"rl:ip:{tag}-a"], [f"rl:user:{tag}-b", f"rl:ip:{tag}-b"]
    rates = [0.001, 3, 0.001, 2]  # rate, burst per bucket: the IP bucket empties first
    for _ in range(4):
        waited = int(limiter(keys=a, args=rates))
        out = gate(keys=b, args=[2, 0, "0", "0", "", 1000, *rates])
        assert (waited == 0) == (out[0] == 0) and retry_after_s(waited) == retry_after_s(int(out[0]))
        assert [float(r.hget(k, "tokens")) for k in a] == pytest.approx([float(r.hget(k, "tokens")) for k in b],
                                                                        abs=0.01)
    assert out[0] > 0 and len(out) == 1  # refused: nothing else done
