"""The feed's event-loop fast path answers exactly what the full pipeline answers, or declines.

A world is seeded into its own keyspace and Redis database as the topologies would write it
(profiles, cached posts, author caches, timelines, counters; two celebrities merged at read time).
For every reader and both orders, pages walked by cursor through :func:`fast_feed` equal those of
:func:`read_known_feed` (freshness age aside); hides, deletes and private posts apply at once; a
rebuild, an evicted celebrity cache or a body missing from the cache make it decline (None).
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest
from support.api import api_settings

from bench.read_api import seed
from core.settings import isolated, with_overrides
from models.ranking import EngagementRecencyRanker
from serving.feed.engines import ReadEngines
from serving.feed.fast import fast_feed
from serving.feed.pipeline import read_known_feed
from stores import cassandra
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from stores.feedpage import page_script

pytestmark = pytest.mark.timeout(600)
KEYSPACE, DB, READERS = "fs_itest_fastfeed", 11, 6


@pytest.fixture(scope="module")
def world(stack) -> Any:
    s = isolated(api_settings(stack), KEYSPACE, DB)
    c = cassandra.cluster(s).connect()
    c.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    c.cluster.shutdown()
    shape = seed(s, READERS, 14, 6, 5, 2, random.Random(3))
    reads = ReadEngines(with_overrides(s, celebrity_threshold=READERS - 1), EngagementRecencyRanker())
    yield reads, shape["readers"], redis_store.client(s)
    reads.close()


def comparable(page: dict[str, Any] | None) -> dict[str, Any] | None:
    if page is not None:
        page = {**page, "freshness": {**page["freshness"], "age_ms": None}}
    return page


async def walk(e: ReadEngines, reader: str, algorithm: str, limit: int) -> list[dict[str, Any]]:
    """Pages of ``reader`` by both paths, asserting they are equal; the fast path must answer."""
    pages, before = [], None
    for _ in range(20):
        slow = read_known_feed(e, reader, algorithm, limit, before)  # first: it warms what it loads
        fast = await fast_feed(e, reader, algorithm, limit, before)
        assert fast is not None, f"the fast path declined a warm page of {reader}"
        assert comparable(fast) == comparable(slow)
        pages.append(fast)
        if fast["next_cursor"] is None:
            return pages
        before = e.codec.decode(f"feed:{reader}", fast["next_cursor"]).before
    raise AssertionError("cursor walk did not end")


async def test_fast_path_equals_the_full_pipeline_page_by_page(world) -> None:
    e, readers, _ = world
    e.aredis = redis_store.async_client(e.settings)  # bound to this test's event loop
    e.page_script = page_script(e.aredis)
    for rd in readers:
        assert await fast_feed(e, rd, "chronological", 7, None) is None  # never rebuilt here: declines
        read_known_feed(e, rd, "chronological", 7, None)  # the full pipeline rebuilds once
        for algorithm in ("chronological", "ranked"):
            pages = await walk(e, rd, algorithm, 7)
            ids = [it["post_id"] for p in pages for it in p["items"]]
            assert len(ids) == len(set(ids)) and len(ids) > 7  # no repeats, several pages
            assert all(it["counts"] is not None and it["author"]["handle"] for p in pages for it in p["items"])


async def test_hides_deletes_and_declines_like_the_full_pipeline(world) -> None:
    e, readers, r = world
    e.aredis = redis_store.async_client(e.settings)
    e.page_script = page_script(e.aredis)
    rd = readers[0]
    read_known_feed(e, rd, "chronological", 10, None)
    first = (await fast_feed(e, rd, "chronological", 10, None))["items"]
    hidden_author, deleted = first[0]["author_id"], first[1]["post_id"]
    r.sadd(tls.k_negative(rd), hidden_author)
    r.sadd(post_store.DELETED, deleted)
    try:
        pages = await walk(e, rd, "chronological", 10)
        items = [it for p in pages for it in p["items"]]
        assert hidden_author not in {it["author_id"] for it in items}
        assert deleted not in {it["post_id"] for it in items}
    finally:
        r.srem(tls.k_negative(rd), hidden_author)
        r.srem(post_store.DELETED, deleted)

    body_key = post_store.k_post(first[2]["post_id"])
    body = r.get(body_key)
    r.delete(body_key)  # a cache miss: Cassandra read-through is the full pipeline's
    assert await fast_feed(e, rd, "chronological", 10, None) is None
    r.set(body_key, body)

    celeb = "ba0"  # the seed's celebrities are the first authors, followed by every reader
    cached = r.zrange(post_store.k_author(celeb), 0, -1, withscores=True)
    r.delete(post_store.k_author(celeb))  # evicted author cache: the author index is needed
    assert await fast_feed(e, rd, "chronological", 10, None) is None
    r.zadd(post_store.k_author(celeb), dict(cached))

    r.set(tls.k_stale(rd), "1")  # skipped while inactive: rebuild first
    assert await fast_feed(e, rd, "chronological", 10, None) is None
    read_known_feed(e, rd, "chronological", 10, None)
    assert await fast_feed(e, rd, "chronological", 10, None) is not None


def test_response_bytes_match_the_openapi_schema_on_both_paths(world) -> None:
    import jsonschema
    from support.api import bearer, running_app

    e, readers, r = world
    rd = readers[1]
    with running_app(e.settings) as client:
        doc = client.get("/openapi.json").json()
        check = jsonschema.Draft202012Validator({**doc, "$ref": "#/components/schemas/FeedPage"})
        r.set(tls.k_stale(rd), "1")  # the first read rebuilds: the full pipeline answers it
        for params in ({"limit": 5}, {"limit": 5}, {"limit": 5, "algorithm": "ranked"}):
            res = client.get(f"/v1/users/{rd}/feed", params=params, headers=bearer(e.settings, rd))
            assert res.status_code == 200 and res.headers["content-type"] == "application/json"
            body = json.loads(res.content)
            assert not list(check.iter_errors(body)), list(check.iter_errors(body))[:3]
            assert len(body["items"]) == 5
        body["items"][0]["surprise"] = 1  # the schema is closed: the check can fail
        assert list(check.iter_errors(body))


def test_thin_route_serves_the_common_page_and_hands_every_other_request_on(world, monkeypatch) -> None:
    """Over HTTP: the thin route (serving/feed/thin.py) answers the owner's plain page with the full
    pipeline's page, takes the read rate limit in its script (429 + Retry-After), and sends every
    request it does not fully understand to the declared FastAPI route, which maps it as before."""
    import time

    from support.api import bearer, running_app

    from serving.feed import thin
    from stores.requests import k_read_rate_user

    e, readers, r = world
    rd, other = readers[2], readers[3]
    declared: list[str] = []
    real = thin.ThinFeed.declared

    async def spy(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        declared.append(scope["path"])
        await real(scope, receive, send)

    monkeypatch.setattr(thin.ThinFeed, "declared", staticmethod(spy))
    url, auth = f"/v1/users/{rd}/feed", bearer(e.settings, rd)
    with running_app(e.settings) as client:
        read_known_feed(e, rd, "chronological", 6, None)  # warm: the common case from here on
        first = client.get(url, params={"limit": 6}, headers=auth)
        assert first.status_code == 200 and declared == []
        assert comparable(first.json()) == comparable(read_known_feed(e, rd, "chronological", 6, None))
        before = e.codec.decode(f"feed:{rd}", first.json()["next_cursor"]).before
        second = client.get(url, params={"limit": 6, "cursor": first.json()["next_cursor"]}, headers=auth)
        assert second.status_code == 200 and declared == []
        assert comparable(second.json()) == comparable(read_known_feed(e, rd, "chronological", 6, before))
        assert client.get(url, params={"algorithm": "ranked"}, headers=auth).json()["ranking"]["requested"] == "ranked"
        assert declared == []

        # an empty bucket that refills from a minute ahead: still empty however slow this machine is
        r.hset(k_read_rate_user(rd), mapping={"tokens": "0", "ts": int(time.time() * 1000) + 60_000})
        limited = client.get(url, headers=auth)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1, limited.text
        assert limited.json()["detail"].startswith("rate limit exceeded; retry in ") and declared == []
        r.delete(k_read_rate_user(rd))

        cases = [  # (request, status, what the body says): each one goes on to the declared route
            ({}, 401, "missing bearer token"),
            ({"headers": {"Authorization": "Bearer nope"}}, 401, "invalid token"),
            ({"headers": bearer(e.settings, other)}, 403, "may not act as"),
            ({"headers": auth, "params": {"limit": 0}}, 422, "limit"),
            ({"headers": auth, "params": {"limit": "2x"}}, 422, "limit"),
            ({"headers": auth, "params": {"algorithm": "best"}}, 422, "algorithm"),
            ({"headers": auth, "params": {"cursor": "garbage"}}, 400, "invalid cursor"),
        ]
        for n, (kwargs, status, says) in enumerate(cases, 1):
            res = client.get(url, **kwargs)
            assert res.status_code == status and says in res.text, (kwargs, res.status_code, res.text)
            assert len(declared) == n, kwargs
        assert client.get(url, headers=auth).headers.get("www-authenticate") is None
        assert client.get(url).headers["www-authenticate"] == "Bearer"
        bad_user = client.get("/v1/users/no$such/feed", headers=bearer(e.settings, "no$such"))
        assert bad_user.status_code == 422 and "user_id" in bad_user.text
        waited = client.get(url, headers={**auth, "X-Consistency-Token": "not-a-token"})
        assert waited.status_code == 200 and "consistency" in waited.json() and declared[-1] == url


@pytest.mark.parametrize("bucket", ["user", "ip"])
def test_thin_and_declared_routes_share_one_read_bucket_of_the_configured_size(world, bucket) -> None:
    """The read rate limit folded into the page script is the declared route's limit: the same token
    bucket (stores.requests.TOKEN_BUCKET_FN_LUA), keys and size. With a bucket of 3 that does not
    refill, the thin route and the declared route (with a consistency token) together serve 3 pages;
    the 4th is 429 with Retry-After and the same body on both routes; per user, or per client IP
    across two users."""
    from support.api import bearer, running_app

    from core.settings import with_overrides
    from serving.feed import thin
    from stores.requests import k_read_rate_ip, k_read_rate_user

    e, readers, r = world
    rd, other = readers[4], readers[5]
    for u in (rd, other):
        read_known_feed(e, u, "chronological", 3, None)  # warm: the thin route's common case
    slow = {"user": "api_read_rate_user", "ip": "api_read_rate_ip"}[bucket]
    big = {"user": "api_read_rate_ip", "ip": "api_read_rate_user"}[bucket]
    s = with_overrides(e.settings, **{f"{slow}_per_s": 0.001, f"{slow}_burst": 3,
                                      f"{big}_per_s": 1000.0, f"{big}_burst": 1000})
    keys = [k_read_rate_user(rd), k_read_rate_user(other), k_read_rate_ip("testclient")]
    r.delete(*keys)
    declared: list[str] = []
    real = thin.ThinFeed.declared

    async def spy(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        declared.append(scope["path"])
        await real(scope, receive, send)

    try:
        with running_app(s) as client:
            thin.ThinFeed.declared = staticmethod(spy)  # type: ignore[method-assign]
            second = other if bucket == "ip" else rd
            a = client.get(f"/v1/users/{rd}/feed", params={"limit": 3}, headers=bearer(s, rd))
            b = client.get(f"/v1/users/{second}/feed", params={"limit": 3}, headers=bearer(s, second))
            c = client.get(f"/v1/users/{rd}/feed", params={"limit": 3},
                           headers={**bearer(s, rd), "X-Consistency-Token": "not-a-token"})  # declared route
            assert [a.status_code, b.status_code, c.status_code] == [200, 200, 200], (a.text, b.text, c.text)
            assert len(declared) == 1 and "consistency" in c.json()  # a and b: the thin route
            thin_429 = client.get(f"/v1/users/{second}/feed", params={"limit": 3}, headers=bearer(s, second))
            declared_429 = client.get(f"/v1/users/{rd}/feed", params={"limit": 3},
                                      headers={**bearer(s, rd), "X-Consistency-Token": "not-a-token"})
            assert len(declared) == 2  # the thin route's 429 came from its script
            for res in (thin_429, declared_429):
                assert res.status_code == 429, res.text
                assert int(res.headers["Retry-After"]) >= 1
                assert res.json()["detail"].startswith("rate limit exceeded; retry in ")
            assert thin_429.headers["content-type"] == declared_429.headers["content-type"]
    finally:
        thin.ThinFeed.declared = staticmethod(real)  # type: ignore[method-assign]
        r.delete(*keys)


def test_front_door_sends_what_the_stack_would_and_hands_every_other_outcome_on(world, monkeypatch) -> None:
    """serving.feed.thin.FeedAPI: a ready page is sent before the middleware stack with the bytes and
    headers the stack would send (X-Request-ID echoed or minted) and counted in /metrics under the
    route template; a 429 and an exception raised while deciding go through the stack (the app's
    handlers, the same request id)."""
    import re

    from support.api import bearer, running_app

    from serving.feed import thin
    from stores.requests import k_read_rate_user

    e, readers, r = world
    rd = readers[0]
    answered: list[bool] = []
    real_front = thin.front_door

    async def spy(app, scope, child, send) -> bool:  # type: ignore[no-untyped-def]
        answered.append(await real_front(app, scope, child, send))
        return answered[-1]

    monkeypatch.setattr(thin, "front_door", spy)
    url, auth = f"/v1/users/{rd}/feed", bearer(e.settings, rd)
    counted = re.compile(r'feedstream_http_requests_total\{method="GET",route="/v1/users/\{user_id\}/feed",'
                         r'status="(\d+)"\} ([0-9.]+)')

    def counts(client) -> dict[str, float]:  # type: ignore[no-untyped-def]
        return {s: float(n) for s, n in counted.findall(client.get("/metrics").text)}

    read_known_feed(e, rd, "chronological", 5, None)  # warm: the common case
    with running_app(e.settings) as client:
        before = counts(client)
        front = client.get(url, params={"limit": 5}, headers={**auth, "X-Request-ID": "front-1"})
        assert answered == [True] and front.status_code == 200, front.text
        assert front.headers["x-request-id"] == "front-1" and front.headers["content-type"] == "application/json"
        minted = client.get(url, params={"limit": 5}, headers=auth)
        assert answered == [True, True] and re.fullmatch(r"[0-9a-f]{32}", minted.headers["x-request-id"])
        assert counts(client).get("200", 0) - before.get("200", 0) == 2

        route, client.app.front = client.app.front, None  # the front door shut: the stack answers
        stack = client.get(url, params={"limit": 5}, headers={**auth, "X-Request-ID": "front-1"})
        client.app.front = route
        assert answered == [True, True] and stack.status_code == 200
        assert comparable(json.loads(stack.content)) == comparable(json.loads(front.content))
        assert dict(stack.headers) | {"content-length": "-"} == dict(front.headers) | {"content-length": "-"}

        r.hset(k_read_rate_user(rd), mapping={"tokens": "0", "ts": int(time.time() * 1000) + 60_000})
        try:
            limited = client.get(url, headers={**auth, "X-Request-ID": "limited-1"})
        finally:
            r.delete(k_read_rate_user(rd))
        assert answered[-1] is False and limited.status_code == 429 and "Retry-After" in limited.headers
        assert limited.headers["x-request-id"] == "limited-1"
        assert counts(client).get("429", 0) - before.get("429", 0) == 1

        async def boom(app, scope):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom while deciding")

        monkeypatch.setattr(thin, "decide", boom)
        with pytest.raises(RuntimeError, match="boom while deciding"):  # re-raised inside the stack
            client.get(url, headers=auth)
        assert answered[-1] is False


async def test_ranked_page_script_reads_the_rankers_author_context(world) -> None:
    """With a ranker that reads author context (LightGBM), the page script returns that context in the
    same call: equal to what models.ranker.redis_author_context reads (follower counts, friendship),
    so the features, and the order, are those the ranker would compute by its own round trip."""
    import time as clock

    from models.ranker import load_ranker, redis_author_context
    from serving.feed import fast
    from stores import feedpage

    e, readers, r = world
    fetch = redis_author_context(r)
    ranker = load_ranker(context=fetch)
    ranker.clock = lambda: 1_900_000_000.0  # the same "now" for both feature matrices
    assert ranker.wants_context
    aredis = redis_store.async_client(e.settings)  # bound to this test's event loop
    script = feedpage.page_script(aredis)
    checked = 0
    for rd in readers:
        read_known_feed(e, rd, "chronological", 8, None)  # warm
        page = await feedpage.feed_page(script, rd, None, 16, 8, e.settings.celebrity_threshold,
                                        e.settings.author_cache_cap, int(clock.time() * 1000), context=True)
        assert isinstance(page, feedpage.RawPage) and page.context is not None, page
        authors = list(page.affinity)
        want = {a: (c.followers, c.is_friend) for a, c in fetch(rd, authors).items()}
        assert page.context == want and set(want) == set(authors)
        checked += any(f for _, f in want.values()) + any(n for n, _ in want.values())
        posts = [json.loads(b) for b in page.bodies]
        items, _ = await fast._items(e, page, posts, True, "reader")
        ctx = {a: fast.AuthorContext(n, f) for a, (n, f) in page.context.items()}
        assert (ranker.features(rd, items, ctx) == ranker.features(rd, items)).all()
        assert ranker.scores(rd, items, ctx) == ranker.scores(rd, items)
        plain = await feedpage.feed_page(script, rd, None, 16, 8, e.settings.celebrity_threshold,
                                         e.settings.author_cache_cap, int(clock.time() * 1000))
        assert isinstance(plain, feedpage.RawPage) and plain.context is None  # not asked: not read
    await aredis.aclose()
    assert checked  # some author had followers or was a friend: the comparison saw real values
