"""The feed route's dispatch cost, without engines: API CPU per request of the ASGI app itself.

Isolates what the thin route (:mod:`serving.feed.thin`) removes: FastAPI's routing and dependency
resolution (bearer, JWT, settings, the rate-limit dependency). The page layer is replaced by a
canned 20-item page and the rate limiter by "not limited" in both paths, so the figure is the
framework's share only (the page script's own cost and the rate limit's separate Redis round trip,
which the thin route also saves, are not in it; `bench.capacity` measures those on the real stack).
Per request: process CPU (``time.process_time``) over N requests driven in-process through the
whole ASGI app (middlewares included), for ``GET /v1/_bench/noop`` (the ceiling), the feed through
the app's front door (:class:`serving.feed.thin.FeedAPI`, before the middleware), through the thin
route with the front door shut (inside the middleware), and through the declared FastAPI route, in
alternating rounds.

    python -m bench.feed_dispatch --requests 3000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any

PATH = "/v1/users/br1/feed?limit=20"


def build() -> tuple[Any, bytes]:
    """The app (not started) with the page layer and rate limiter replaced, and a bearer token."""
    import redis.asyncio as aioredis

    from core.settings import get_settings, with_overrides
    from models.ranking import EngagementRecencyRanker
    from serving.app import create_app
    from serving.auth import mint_token
    from serving.feed import thin
    from serving.feed.engines import ReadEngines
    from serving.ratelimit import RateLimiter
    from serving.routers import reads_feed

    s = with_overrides(get_settings(), jwt_secret="feed-dispatch-bench-secret-0123456789")
    app = create_app(s)
    app.state.reads = ReadEngines(s, EngagementRecencyRanker())  # clients connect lazily: never here
    app.state.rate_limiter = RateLimiter(aioredis.Redis())
    page = {"items": [{"post_id": str(i), "author_id": "a", "text": "x" * 80} for i in range(20)],
            "next_cursor": None, "ranking": {"requested": "chronological", "applied": "chronological",
                                             "ranker": None, "fallback": False, "reason": None},
            "freshness": {"source": "redis", "applied": None, "age_ms": None, "fanout_watermarks": {}},
            "degraded": {"source": "redis", "hydration_partial": False, "notes": []}}

    async def canned(*_: Any, **__: Any) -> dict[str, Any]:
        return dict(page)

    async def not_limited(self: RateLimiter, buckets: Any) -> int:
        return 0

    thin.fast_page = canned  # type: ignore[assignment]
    reads_feed.fast_feed = canned  # type: ignore[assignment]
    RateLimiter.wait_ms = not_limited  # type: ignore[method-assign]
    return app, mint_token("br1", s, 3600).encode()


async def call(app: Any, token: bytes, path: str, declared: bool) -> None:
    """One GET through the whole ASGI app; raises unless it answers 200."""
    from serving.feed import thin

    p, _, q = path.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": p, "raw_path": p.encode(), "root_path": "", "query_string": q.encode(),
             "headers": [(b"host", b"bench"), (b"authorization", b"Bearer " + token)],
             "client": ("127.0.0.1", 1), "server": ("bench", 80)}
    if declared:
        scope[thin.SLOW] = True  # as the thin route hands a request on
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    if sent[0]["status"] != 200:
        raise SystemExit(f"{path}: {sent}")


async def cpu_us(app: Any, token: bytes, path: str, declared: bool, n: int, front: bool = True) -> float:
    """Process CPU microseconds per request over ``n`` requests (after 200 warm-up requests);
    ``front=False`` shuts the app's front door (thin.FeedAPI): the thin route inside the middleware."""
    door = getattr(app, "front", None)
    if not front:
        app.front = None
    try:
        for _ in range(200):
            await call(app, token, path, declared)
        c0 = time.process_time()
        for _ in range(n):
            await call(app, token, path, declared)
        return (time.process_time() - c0) / n * 1e6
    finally:
        if door is not None:
            app.front = door


async def run(n: int, rounds: int) -> list[dict[str, float]]:
    app, token = build()
    out = []
    for r in range(rounds):
        row = {"noop": await cpu_us(app, token, "/v1/_bench/noop", False, n),
               "feed_front": await cpu_us(app, token, PATH, False, n),
               "feed_thin": await cpu_us(app, token, PATH, False, n, front=False),
               "feed_declared": await cpu_us(app, token, PATH, True, n)}
        print(f"round {r}: noop {row['noop']:.0f} us, feed front door {row['feed_front']:.0f} us, "
              f"thin route inside the middleware {row['feed_thin']:.0f} us, "
              f"declared route {row['feed_declared']:.0f} us CPU per request")
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.feed_dispatch", description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=3000, help="requests per path per round")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f}")
    asyncio.run(run(args.requests, args.rounds))


if __name__ == "__main__":
    main()
