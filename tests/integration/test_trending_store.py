"""stores.trending on the real Redis, and GET /v1/trending served from it."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from core.settings import Settings
from stores import redis as redis_store
from stores.trending import current_trending, keys, write_current
from topologies.trending.logic import HASHTAGS, Window, WindowSpec, score, top_k


def _list(window: Window, counts: dict[str, int], label_ms: int):
    spec = WindowSpec(label_ms, label_ms // 2)
    return top_k(HASHTAGS, window, [score(HASHTAGS, i, window, (n, float(n)), {}, spec)
                                    for i, n in counts.items()], spec, 10)[0]


async def test_current_trending_keeps_the_newest_window_and_serves_it(stack: Settings) -> None:
    r = redis_store.client(stack)
    size = 7_000 + uuid.uuid4().int % 1000 * 1000  # a scope label no other test uses
    new = _list(Window(10_000, 10_000 + size), {"a": 2, "b": 5}, size)
    old = _list(Window(0, size), {"zzz": 50}, size)
    r.delete(*keys(new.scope))
    try:
        assert write_current(r, new.scope, new.window_start, new.window_end, new.entries, now_ms=1)
        assert not write_current(r, old.scope, old.window_start, old.window_end, old.entries)  # older: ignored
        got = current_trending(r, new.scope, limit=1)
        assert (got["window_end"], [(i["item"], i["count"]) for i in got["items"]]) == (10_000 + size, [("b", 5)])

        from serving.auth import mint_token
        from serving.ratelimit import RateLimiter
        from serving.routers.trending import router

        app = FastAPI()
        app.include_router(router)
        app.state.redis = redis_store.async_client(stack)
        app.state.rate_limiter = RateLimiter(app.state.redis)  # reads are rate-limited like the app's
        params = {"kind": "hashtags", "window": new.scope.split(":")[1]}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            anonymous = await c.get("/v1/trending", params=params)
            resp = await c.get("/v1/trending", params=params,
                               headers={"Authorization": f"Bearer {mint_token('analyst', stack)}"})
        assert anonymous.status_code == 401, anonymous.text  # like every endpoint, trending needs a token
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert [(i["rank"], i["item"]) for i in body["items"]] == [(1, "b"), (2, "a")]
        assert body["window_start"] == 10_000
    finally:
        r.delete(*keys(new.scope))
