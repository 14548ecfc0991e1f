"""The read side's engines: a sync Redis client, a lazily connected Cassandra session, one circuit
breaker per engine (inside the readers' guards) and for the ranker, the readers, a thread pool for
blocking driver calls, the cursor codec.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar, cast

import redis as _redis
from cassandra.cluster import Session
from fastapi import Depends, HTTPException, Request

from core.settings import Settings
from models.ranking import EngagementRecencyRanker, Ranker
from serving.circuit import Breaker
from serving.feed.cursor import BadCursor, CursorCodec, Position
from serving.readers.base import (
    CASSANDRA_ERRORS,
    REDIS_ERRORS,
    Forbidden,
    Guard,
    NotFound,
    Unavailable,
)
from serving.readers.bundle import Readers, build
from stores import cassandra as cassandra_store
from stores import redis as redis_store
from stores.feedpage import page_script

T = TypeVar("T")
__all__ = ["CASSANDRA_ERRORS", "REDIS_ERRORS", "ReadEngines", "ReadsDep", "Unavailable", "default_ranker",
           "get_reads"]


def default_ranker(settings: Settings, r: _redis.Redis) -> Ranker:
    """The ranker ``settings.ranker`` names: auto (LightGBM if its artifact loads), lightgbm or heuristic.

    In production ``auto`` means ``lightgbm``: a missing or broken artifact fails start-up loudly
    instead of degrading every ranked feed to the heuristic.
    """
    from models.ranker import select_ranker

    choice = "lightgbm" if settings.ranker == "auto" and settings.env == "production" else settings.ranker
    return cast(Ranker, select_ranker(choice, r, EngagementRecencyRanker()))


class ReadEngines:
    """Everything the read routers need, built once per app by the lifespan."""

    def __init__(self, settings: Settings,
                 ranker: Ranker | None = None, *, ranker_timeout_s: float = 0.05,
                 threads: int = 32) -> None:
        self.settings = settings
        self.ranker_timeout_s = ranker_timeout_s
        self.redis = redis_store.client(settings)
        self.aredis = redis_store.async_client(settings)  # the event-loop fast path (serving/feed/fast.py)
        self.page_script = page_script(self.aredis)
        self.ranker: Ranker = ranker or default_ranker(settings, self.redis)
        self.redis_breaker = Breaker("redis", failures=1, reset_s=2.0)
        self.cassandra_breaker = Breaker("cassandra", failures=1, reset_s=3.0)
        self.ranker_breaker = Breaker("ranker", failures=3, reset_s=10.0)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="reads")
        self.ranker_pool = ThreadPoolExecutor(4, thread_name_prefix="ranker")
        self.codec = CursorCodec(settings.signing_secret())
        self._session: Session | None = None
        self.redis_guard: Guard[_redis.Redis] = Guard("redis", lambda: self.redis, self.redis_breaker,
                                                      REDIS_ERRORS)
        self.cassandra_guard: Guard[Session] = Guard("cassandra", self.session, self.cassandra_breaker,
                                                     CASSANDRA_ERRORS)
        self.readers: Readers = build(self.redis_guard, self.cassandra_guard, settings)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking read off the event loop on the read pool; 503 (with Retry-After) if no engine
        can answer, 404 for :class:`NotFound`, 403 for :class:`Forbidden`."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        except Unavailable as exc:
            raise HTTPException(503, f"read unavailable, retry later: {exc}",
                                headers={"Retry-After": str(self.settings.api_retry_after_s)}) from exc
        except NotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except Forbidden as exc:
            raise HTTPException(403, str(exc)) from exc

    def session(self) -> Session:
        """The Cassandra session (connected and migrated on first use)."""
        if self._session is None:
            self._session = cassandra_store.session(self.settings)
        return self._session

    def cursor_in(self, scope: str, cursor: str | None) -> Position | None:
        """Decode a request's cursor for ``scope``; 400 if it is not a valid cursor of this list."""
        if cursor is None:
            return None
        try:
            return self.codec.decode(scope, cursor)
        except BadCursor as exc:
            raise HTTPException(400, f"invalid cursor: {exc}") from exc

    def cursor_out(self, scope: str, before: int | str | None) -> str | None:
        """The next-page cursor (None at the end)."""
        return None if before is None else self.codec.encode(scope, Position(before))

    def close(self) -> None:
        """Stop the pools and close the Redis pool (the Cassandra session is process-shared)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.ranker_pool.shutdown(wait=False, cancel_futures=True)
        self.redis.close()

    async def aclose(self) -> None:
        """:meth:`close`, and the async Redis pool."""
        self.close()
        await self.aredis.aclose()


async def get_reads(request: Request) -> ReadEngines:
    """The app's read engines, created by the lifespan (async: a sync dependency costs a thread hop)."""
    return request.app.state.reads


ReadsDep = Annotated[ReadEngines, Depends(get_reads)]
