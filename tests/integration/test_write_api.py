"""Write API on the real Kafka, registry and Redis: every endpoint's event, auth, idempotency, limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.api import TopicTail, api_settings, bearer, new_user, running_app

from core.settings import Settings
from stores import graph
from stores import redis as redis_store
from streams.admin import apply_topics


@pytest.fixture(scope="module")
def settings(stack: Settings) -> Settings:
    apply_topics(stack)
    return api_settings(stack, api_rate_user_burst=1000, api_rate_ip_burst=100_000, api_rate_ip_per_s=10_000)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings) as c:
        yield c


@pytest.fixture()
def tails(stack: Settings) -> Iterator[dict[str, TopicTail]]:
    made = {t: TopicTail(stack, t) for t in ("users.v1", "posts.v1", "graph.v1", "engagements.v1")}
    yield made
    for t in made.values():
        t.close()


def accepted(r) -> dict[str, Any]:
    assert r.status_code == 202, r.text
    return r.json()


def check_event(tails: dict[str, TopicTail], topic: str, body: dict[str, Any], record: str,
                key: str, **expected: Any) -> dict[str, Any]:
    decoded, got_key = tails[topic].find(body["event_id"])
    assert decoded.name == record
    assert got_key == key.encode()
    assert {k: decoded.value[k] for k in expected} == expected
    return decoded.value


def test_user_and_post_writes_produce_their_events(client: TestClient, settings: Settings, tails) -> None:
    ann = new_user(settings)
    h = bearer(settings, ann)
    body = accepted(client.post("/v1/users", json={"user_id": ann, "handle": "ann_1", "display_name": "Ann"},
                                headers=h))
    check_event(tails, "users.v1", body, "UserRegistered", ann, user_id=ann, handle="ann_1", bio=None, actor_id=ann)
    body = accepted(client.patch(f"/v1/users/{ann}", json={"bio": "hello"}, headers=h))
    check_event(tails, "users.v1", body, "ProfileUpdated", ann, user_id=ann, bio="hello", display_name=None)

    post = {"text": "first #Kafka post @bob", "links": ["https://example.com/x"], "visibility": "FOLLOWERS",
            "media": [{"kind": "IMAGE", "url": "https://cdn.example/a.png", "width": 640, "height": 480}]}
    created = accepted(client.post("/v1/posts", json=post, headers=h))
    pid = created["post_id"]
    assert isinstance(pid, int) and 0 < pid < 2**53
    value = check_event(tails, "posts.v1", created, "PostCreated", ann, post_id=pid, author_id=ann,
                        hashtags=["kafka"], mentions=["bob"], visibility="FOLLOWERS", links=post["links"])
    assert value["media"][0] == {"kind": "IMAGE", "url": "https://cdn.example/a.png", "width": 640,
                                 "height": 480, "duration_ms": None, "media_id": None}
    later = accepted(client.post("/v1/posts", json={"text": "second"}, headers=h))["post_id"]
    assert later > pid  # time-sortable

    edited = accepted(client.put(f"/v1/posts/{pid}", json={"text": "edited"}, headers=h))
    check_event(tails, "posts.v1", edited, "PostEdited", ann, post_id=pid, text="edited", visibility="PUBLIC")
    deleted = accepted(client.delete(f"/v1/posts/{pid}", headers=h))
    check_event(tails, "posts.v1", deleted, "PostDeleted", ann, post_id=pid, author_id=ann)
    assert client.put(f"/v1/posts/{pid}", json={"text": "again"}, headers=h).status_code == 404
    assert client.put(f"/v1/posts/{pid}/like", headers=h).status_code == 404


@pytest.mark.parametrize("method,path,record,key_of,fields", [
    ("put", "/following/{b}", "Followed", "b", {"follower_id": "a", "followee_id": "b"}),
    ("delete", "/following/{b}", "Unfollowed", "b", {"follower_id": "a", "followee_id": "b"}),
    ("post", "/friend-requests/{b}", "FriendRequestSent", "b", {"from_id": "a", "to_id": "b"}),
    ("post", "/friend-requests/{b}/accept", "FriendRequestAccepted", "a", {"from_id": "b", "to_id": "a"}),
    ("post", "/friend-requests/{b}/decline", "FriendRequestDeclined", "a", {"from_id": "b", "to_id": "a"}),
    ("delete", "/friends/{b}", "Unfriended", "b", {"user_id": "a", "friend_id": "b"}),
    ("put", "/blocks/{b}", "Blocked", "a", {"blocker_id": "a", "blocked_id": "b"}),
    ("delete", "/blocks/{b}", "Unblocked", "a", {"blocker_id": "a", "blocked_id": "b"}),
])
def test_graph_writes_produce_their_events(client: TestClient, settings: Settings, tails,
                                           method: str, path: str, record: str, key_of: str,
                                           fields: dict[str, str]) -> None:
    ids = {"a": new_user(settings), "b": new_user(settings)}
    if path.endswith(("/accept", "/decline")):  # b's request to a, as the graph topology records it
        redis_store.client(settings).sadd(graph.k_requests(ids["a"]), ids["b"])
    if path.startswith("/friends/"):  # a and b are friends, as the graph topology records it
        from stores.cassandra import session

        graph.GraphWriter(redis_store.client(settings), session(settings)).befriend(ids["a"], ids["b"])
    r = getattr(client, method)(f"/v1/users/{ids['a']}" + path.format(b=ids["b"]), headers=bearer(settings, ids["a"]))
    check_event(tails, "graph.v1", accepted(r), record, ids[key_of], **{k: ids[v] for k, v in fields.items()})


def test_accept_or_decline_without_a_pending_request_is_404_with_no_event(client: TestClient, settings: Settings,
                                                                          stack: Settings, tails) -> None:
    """Forced friendship (issue #14 item 1): the API checks the graph view's pending requests first."""
    from stores.cassandra import session

    me, other, durable_only, c = new_user(settings), new_user(settings), new_user(settings), new_user(settings)
    h = bearer(settings, me)
    assert client.post(f"/v1/users/{me}/friend-requests/{other}/accept", headers=h).status_code == 404
    assert client.post(f"/v1/users/{me}/friend-requests/{other}/decline", headers=h).status_code == 404
    retried = client.post(f"/v1/users/{me}/friend-requests/{other}/accept", headers={**h, "Idempotency-Key": "acc-1"})
    assert retried.status_code == 404  # the key is released: a retry once the request is recorded can succeed
    # recorded only in Cassandra (Redis view lost or not yet warmed): found on the Redis miss
    session(stack).execute("INSERT INTO friend_requests (to_id, from_id, since) VALUES (%s, %s, 1)", (me, durable_only))
    ok = accepted(client.post(f"/v1/users/{me}/friend-requests/{durable_only}/accept", headers=h))
    # a sentinel keyed like the accepts (graph.v1 key of a block: the blocker), so it comes after them
    sentinel = accepted(client.put(f"/v1/users/{me}/blocks/{c}", headers=h))
    check_event(tails, "graph.v1", sentinel, "Blocked", me, blocker_id=me, blocked_id=c)
    mine = [d for d in tails["graph.v1"].seen if d.value["actor_id"] == me]
    assert [(d.name, d.value["event_id"]) for d in mine] == [("FriendRequestAccepted", ok["event_id"]),
                                                            ("Blocked", sentinel["event_id"])]


def test_unfriending_someone_who_is_not_a_friend_is_404_with_no_event(client: TestClient, settings: Settings,
                                                                    tails) -> None:
    me, other, c = new_user(settings), new_user(settings), new_user(settings)
    h = bearer(settings, me)
    r = client.delete(f"/v1/users/{me}/friends/{other}", headers=h)
    assert r.status_code == 404 and "not friends" in r.json()["detail"], r.text
    # a sentinel on the same key as an Unfriended would use is not preceded by one
    sentinel = accepted(client.put(f"/v1/users/{c}/following/{other}", headers=bearer(settings, c)))
    check_event(tails, "graph.v1", sentinel, "Followed", other, follower_id=c, followee_id=other)
    assert not [d for d in tails["graph.v1"].seen if d.name == "Unfriended" and d.value["actor_id"] == me]


def test_engagement_writes_produce_their_events(client: TestClient, settings: Settings, tails) -> None:
    author, fan = new_user(settings), new_user(settings)
    pid = accepted(client.post("/v1/posts", json={"text": "engage"}, headers=bearer(settings, author)))["post_id"]
    h = bearer(settings, fan)
    common = {"post_id": pid, "post_author_id": author, "user_id": fan, "actor_id": fan}
    for method, path, record, extra, body in [
        ("put", "/like", "Liked", {}, None), ("delete", "/like", "Unliked", {}, None),
        ("post", "/shares", "Shared", {"comment": "look"}, {"comment": "look"}),
        ("put", "/reactions/WOW", "ReactionAdded", {"kind": "WOW"}, None),
        ("delete", "/reactions/WOW", "ReactionRemoved", {"kind": "WOW"}, None),
    ]:
        kwargs = {"json": body} if body is not None else {}
        r = getattr(client, method)(f"/v1/posts/{pid}{path}", headers=h, **kwargs)
        check_event(tails, "engagements.v1", accepted(r), record, str(pid), **common, **extra)

    top = accepted(client.post(f"/v1/posts/{pid}/comments", json={"text": "nice"}, headers=h))
    check_event(tails, "engagements.v1", top, "CommentAdded", str(pid), **common, comment_id=top["comment_id"],
                text="nice", parent_comment_id=None)
    reply = accepted(client.post(f"/v1/posts/{pid}/comments", json={"text": "re", "parent_comment_id":
                                                                       top["comment_id"]}, headers=bearer(settings, author)))
    check_event(tails, "engagements.v1", reply, "CommentAdded", str(pid), parent_comment_id=top["comment_id"],
                user_id=author)
    bad = client.post(f"/v1/posts/{pid}/comments", json={"text": "x", "parent_comment_id": 12345}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "parent_comment_id"]

    assert client.delete(f"/v1/posts/{pid}/comments/{top['comment_id']}",
                         headers=bearer(settings, author)).status_code == 403
    gone = accepted(client.delete(f"/v1/posts/{pid}/comments/{top['comment_id']}", headers=h))
    check_event(tails, "engagements.v1", gone, "CommentDeleted", str(pid), **common, comment_id=top["comment_id"])
    assert client.delete(f"/v1/posts/{pid}/comments/{top['comment_id']}", headers=h).status_code == 404


def test_only_the_author_may_edit_or_delete(client: TestClient, settings: Settings, tails) -> None:
    author, other = new_user(settings), new_user(settings)
    pid = accepted(client.post("/v1/posts", json={"text": "mine"}, headers=bearer(settings, author)))["post_id"]
    assert client.put(f"/v1/posts/{pid}", json={"text": "yours"}, headers=bearer(settings, other)).status_code == 403
    assert client.delete(f"/v1/posts/{pid}", headers=bearer(settings, other)).status_code == 403
    assert client.put("/v1/posts/4242/like", headers=bearer(settings, other)).status_code == 404
    events = [d for d in tails["posts.v1"].drain(1.0) if d.value["post_id"] == pid]
    assert [d.name for d in events] == ["PostCreated"]


def test_auth_failures_produce_nothing(client: TestClient, settings: Settings, tails) -> None:
    a, b = new_user(settings), new_user(settings)
    assert client.put(f"/v1/users/{a}/following/{b}").status_code == 401
    assert client.put(f"/v1/users/{a}/following/{b}", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.put(f"/v1/users/{a}/following/{b}", headers=bearer(settings, b)).status_code == 403
    assert client.put(f"/v1/users/{a}/following/{a}", headers=bearer(settings, a)).status_code == 422
    assert not [d for d in tails["graph.v1"].drain(1.5) if d.value["actor_id"] in (a, b)]


def test_idempotent_retry_returns_the_same_response_and_no_second_event(
        client: TestClient, settings: Settings, tails) -> None:
    user = new_user(settings)
    h = {**bearer(settings, user), "Idempotency-Key": "create-1"}
    first = client.post("/v1/posts", json={"text": "once"}, headers=h)
    again = client.post("/v1/posts", json={"text": "once"}, headers=h)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()  # the same consistency token too, body and header
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-consistency-token"] == first.headers["x-consistency-token"] == first.json()["consistency_token"]
    reused = client.post("/v1/posts", json={"text": "other"}, headers=h)
    assert reused.status_code == 422 and reused.json()["detail"][0]["type"] == "idempotency_key_reused"
    # another user may use the same key
    assert client.post("/v1/posts", json={"text": "once"}, headers={**bearer(settings, new_user(settings)),
                                                                     "Idempotency-Key": "create-1"}).json() != first.json()
    # a retried delete replays its 202 rather than a 404
    pid = first.json()["post_id"]
    hd = {**bearer(settings, user), "Idempotency-Key": "del-1"}
    d1, d2 = client.delete(f"/v1/posts/{pid}", headers=hd), client.delete(f"/v1/posts/{pid}", headers=hd)
    assert d1.status_code == d2.status_code == 202 and d1.json() == d2.json()
    mine = [d for d in tails["posts.v1"].drain(2.0) if d.value["actor_id"] == user]
    assert sorted(d.name for d in mine) == ["PostCreated", "PostDeleted"]
    assert {d.value["event_id"] for d in mine} == {first.json()["event_id"], d1.json()["event_id"]}


def test_rate_limit_answers_429_with_retry_after(stack: Settings, tails) -> None:
    settings = api_settings(stack, api_rate_user_per_s=0.5, api_rate_user_burst=3)
    user, target = new_user(settings), new_user(settings)
    with running_app(settings) as client:
        h = bearer(settings, user)
        codes = [client.put(f"/v1/users/{user}/following/{target}", headers=h) for _ in range(5)]
        assert [r.status_code for r in codes] == [202, 202, 202, 429, 429]
        assert 1 <= int(codes[3].headers["retry-after"]) <= 2
        other = new_user(settings)  # limits are per user: someone else is not throttled
        assert client.put(f"/v1/users/{other}/following/{target}", headers=bearer(settings, other)).status_code == 202
    ip_settings = api_settings(stack, api_rate_ip_per_s=0.5, api_rate_ip_burst=2)
    with running_app(ip_settings) as client:
        users = [new_user(settings) for _ in range(3)]
        codes = [client.put(f"/v1/users/{u}/following/{target}", headers=bearer(ip_settings, u)).status_code
                 for u in users]
        assert codes[-1] == 429  # per client IP, across users (the IP bucket may hold earlier tests' use)
    follows = [d for d in tails["graph.v1"].drain(1.5) if d.value["actor_id"] == user]
    assert len(follows) == 3


def test_readyz_and_healthz(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"redis": "ok", "kafka": "ok"}
    assert client.get("/v1/_bench/noop").json() == {"ok": True}


def test_ownership_falls_back_to_the_cassandra_posts_table(client: TestClient, settings: Settings,
                                                           stack: Settings, tails) -> None:
    from core.ids import new_post_id
    from stores.cassandra import session

    author, fan = new_user(settings), new_user(settings)
    live, gone = new_post_id(), new_post_id()  # stored by the topologies, never seen by this API's Redis index
    cql = session(stack)
    cql.execute("INSERT INTO posts (post_id, author_id, text, visibility, deleted) VALUES (%s, %s, 'x', 'PUBLIC', false)", (live, author))
    cql.execute("INSERT INTO posts (post_id, author_id, text, deleted) VALUES (%s, %s, 'x', true)", (gone, author))
    liked = accepted(client.put(f"/v1/posts/{live}/like", headers=bearer(settings, fan)))
    check_event(tails, "engagements.v1", liked, "Liked", str(live), post_author_id=author, user_id=fan)
    assert client.put(f"/v1/posts/{live}", json={"text": "no"}, headers=bearer(settings, fan)).status_code == 403
    assert client.put(f"/v1/posts/{gone}/like", headers=bearer(settings, fan)).status_code == 404
    assert client.delete(f"/v1/posts/{gone}", headers=bearer(settings, author)).status_code == 404


def test_concurrent_retries_with_one_key_produce_one_event(client: TestClient, settings: Settings, tails) -> None:
    from concurrent.futures import ThreadPoolExecutor

    user = new_user(settings)
    h = {**bearer(settings, user), "Idempotency-Key": "race-1"}
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/posts", json={"text": "race"}, headers=h), range(8)))
    ok = [r for r in responses if r.status_code == 202]
    assert ok and all(r.status_code in (202, 409) for r in responses), [r.status_code for r in responses]
    assert len({r.json()["event_id"] for r in ok}) == 1
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 409)
    mine = [d for d in tails["posts.v1"].drain(2.0) if d.value["actor_id"] == user]
    assert len(mine) == 1 and mine[0].value["event_id"] == ok[0].json()["event_id"]


def test_an_unfinished_claim_expires_after_the_pending_window(stack: Settings) -> None:
    import json
    import time

    import redis as redis_sync

    from serving.idempotency import fingerprint, redis_key

    settings = api_settings(stack, api_idempotency_pending_s=1)
    user = new_user(settings)
    r = redis_sync.Redis.from_url(settings.redis_url)
    # a request that claimed the key and died before completing it
    pending = json.dumps({"fp": fingerprint("POST", "/v1/posts", b'{"text":"x"}'), "state": "pending"})
    h = {**bearer(settings, user), "Idempotency-Key": "crashed", "Content-Type": "application/json"}
    with running_app(settings) as client:
        r.set(redis_key(user, "crashed"), pending, px=1000)  # after start-up, so the 1 s runs from here
        assert client.post("/v1/posts", content=b'{"text":"x"}', headers=h).status_code == 409
        time.sleep(1.2)
        done = client.post("/v1/posts", content=b'{"text":"x"}', headers=h)
        assert done.status_code == 202
        assert r.pttl(redis_key(user, "crashed")) > 3_600_000  # completed: kept for the full TTL
