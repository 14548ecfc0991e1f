"""Read path with Cassandra unreachable: the feed is served from what Redis holds, flagged partial."""

from __future__ import annotations

import json
import socket
import uuid

from fastapi.testclient import TestClient
from support.api import api_settings

from core.ids import new_post_id
from core.settings import isolated, with_overrides
from serving.app import create_app
from serving.auth import mint_token
from stores import graph
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from stores.users import k_user


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again: nothing listens there


def test_cassandra_down_serves_redis_with_partial_hydration(stack):
    s = isolated(stack, "fs_itest_reads_nocass", 10)
    settings = api_settings(s, cassandra_port=_dead_port(), api_rate_limit_enabled=False)
    r = redis_store.client(s)
    reader, author = f"r{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
    celeb = f"c{uuid.uuid4().hex[:8]}"
    cached, uncached, deleted, starred = new_post_id(), new_post_id(), new_post_id(), new_post_id()
    p = r.pipeline()
    p.hset(k_user(reader), mapping={"handle": reader, "display_name": "R"})
    p.hset(k_user(author), mapping={"handle": author, "display_name": "A"})
    p.zadd(tls.k_timeline(reader), {str(i): i for i in (cached, uncached, deleted)})
    p.set(tls.k_built(reader), "1")
    # a followed celebrity (2 followers > threshold 1): not in the timeline, merged from ap:{celeb}
    p.sadd(graph.k_followers(celeb), reader, "someone")
    p.sadd(graph.k_following(reader), celeb)
    p.zadd(post_store.k_author(celeb), {str(starred): starred})
    for pid, who in ((cached, author), (deleted, author), (starred, celeb)):
        p.set(post_store.k_post(pid), json.dumps({"post_id": pid, "author_id": who, "text": "t", "media": [],
                                         "links": [], "hashtags": [], "mentions": [], "visibility": "PUBLIC",
                                         "edited": False, "deleted": False, "created_at": 1, "updated_at": 1}))
    p.sadd(post_store.DELETED, deleted)
    p.execute()
    app = create_app(with_overrides(settings, celebrity_threshold=1))
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {mint_token(reader, settings)}"}
        res = client.get(f"/v1/users/{reader}/feed", headers=h)
        assert res.status_code == 200, res.text
        body = res.json()
        assert [it["post_id"] for it in body["items"]] == [starred, cached]
        assert body["items"][1]["author"]["display_name"] == "A"
        assert body["degraded"]["source"] == "redis" and body["degraded"]["hydration_partial"] is True
        assert any("cassandra" in n for n in body["degraded"]["notes"])
        # lists that only Cassandra holds answer 503 with Retry-After instead of hanging
        res = client.get(f"/v1/users/{author}/followers", headers=h)
        assert res.status_code == 503 and "Retry-After" in res.headers


def test_cassandra_down_unknown_post_or_user_is_503_not_404(stack):
    """Issue #13 defect 7: with Cassandra unreachable, a post or user the cache misses is unknown, not absent."""
    s = isolated(stack, "fs_itest_reads_nocass", 10)
    settings = api_settings(s, cassandra_port=_dead_port(), api_rate_limit_enabled=False, api_retry_after_s=4)
    r = redis_store.client(s)
    reader, author = f"r{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
    cached, uncached = new_post_id(), new_post_id()  # only `cached` is in the Redis post cache
    p = r.pipeline()
    p.hset(k_user(reader), mapping={"handle": reader, "display_name": "R"})
    p.hset(k_user(author), mapping={"handle": author, "display_name": "A"})
    p.set(post_store.k_post(cached), json.dumps({"post_id": cached, "author_id": author, "text": "t", "media": [],
                                               "links": [], "hashtags": [], "mentions": [], "visibility": "PUBLIC",
                                               "edited": False, "deleted": False, "created_at": 1,
                                               "updated_at": 1}))
    p.execute()
    with TestClient(create_app(settings)) as client:
        h = {"Authorization": f"Bearer {mint_token(reader, settings)}"}
        res = client.get(f"/v1/posts/{uncached}", headers=h)
        assert res.status_code == 503, res.text
        assert res.headers["retry-after"] == "4"
        res = client.get(f"/v1/posts/{uncached}/comments", headers=h)
        assert res.status_code == 503 and res.headers["retry-after"] == "4"
        res = client.get(f"/v1/users/u{uuid.uuid4().hex[:8]}", headers=h)  # not in the profile cache
        assert res.status_code == 503, res.text
        assert res.headers["retry-after"] == "4"
        # what the cache does hold is still served
        res = client.get(f"/v1/posts/{cached}", headers=h)
        assert res.status_code == 200, res.text
        assert res.json()["post_id"] == cached
        assert client.get(f"/v1/users/{author}", headers=h).status_code == 200
