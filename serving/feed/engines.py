"""The read side's engines: a sync Redis client, a lazily connected Cassandra session, one circuit
breaker per engine and for the ranker, a thread pool for blocking driver calls, the cursor codec.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar, cast

import cassandra
import redis as _redis
from cassandra.cluster import NoHostAvailable, Session
from fastapi import Depends, HTTPException, Request

from core.settings import Settings
from models.ranking import EngagementRecencyRanker, Ranker
from serving.circuit import Breaker
from serving.feed.cursor import BadCursor, CursorCodec, Position
from stores import cassandra as cassandra_store
from stores import redis as redis_store

T = TypeVar("T")
D = TypeVar("D")
REDIS_ERRORS: tuple[type[BaseException], ...] = (_redis.ConnectionError, _redis.TimeoutError)
CASSANDRA_ERRORS: tuple[type[BaseException], ...] = (
    NoHostAvailable, cassandra.OperationTimedOut, cassandra.RequestExecutionException)


class Unavailable(Exception):
    """Neither engine can answer this read."""


def default_ranker(settings: Settings, r: _redis.Redis) -> Ranker:
    """The ranker ``settings.ranker`` names: auto (LightGBM if its artifact loads), lightgbm or heuristic."""
    from models.ranker import select_ranker

    return cast(Ranker, select_ranker(settings.ranker, r, EngagementRecencyRanker()))


class ReadEngines:
    """Everything the read routers need, built once per app by the lifespan."""

    def __init__(self, settings: Settings,
                 ranker: Ranker | None = None, *, ranker_timeout_s: float = 0.05,
                 threads: int = 32) -> None:
        self.settings = settings
        self.ranker_timeout_s = ranker_timeout_s
        self.redis = redis_store.client(settings)
        self.ranker: Ranker = ranker or default_ranker(settings, self.redis)
        self.redis_breaker = Breaker("redis", failures=1, reset_s=2.0)
        self.cassandra_breaker = Breaker("cassandra", failures=1, reset_s=3.0)
        self.ranker_breaker = Breaker("ranker", failures=3, reset_s=10.0)
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="reads")
        self.ranker_pool = ThreadPoolExecutor(4, thread_name_prefix="ranker")
        self.codec = CursorCodec(settings.jwt_secret.get_secret_value())
        self._session: Session | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking read off the event loop on the read pool; 503 if no engine can answer."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        except Unavailable as exc:
            raise HTTPException(503, f"read unavailable, retry later: {exc}",
                                headers={"Retry-After": str(self.settings.api_retry_after_s)}) from exc

    def session(self) -> Session:
        """The Cassandra session (connected and migrated on first use)."""
        if self._session is None:
            self._session = cassandra_store.session(self.settings)
        return self._session

    def cass(self, fn: Callable[[Session], T], default: D) -> tuple[T | D, bool]:
        """``fn(session)`` under the Cassandra breaker: ``(result, True)``, or ``(default, False)`` if down."""
        if not self.cassandra_breaker.allow():
            return default, False
        try:
            out = fn(self.session())
        except CASSANDRA_ERRORS:
            self.cassandra_breaker.failure()
            return default, False
        except BaseException:
            self.cassandra_breaker.release()
            raise
        self.cassandra_breaker.success()
        return out, True

    def red(self, fn: Callable[[_redis.Redis], T], default: D) -> tuple[T | D, bool]:
        """``fn(redis)`` under the Redis breaker: ``(result, True)``, or ``(default, False)`` if down."""
        if not self.redis_breaker.allow():
            return default, False
        try:
            out = fn(self.redis)
        except REDIS_ERRORS:
            self.redis_breaker.failure()
            return default, False
        except BaseException:
            self.redis_breaker.release()
            raise
        self.redis_breaker.success()
        return out, True

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


def get_reads(request: Request) -> ReadEngines:
    """The app's read engines, created by the lifespan."""
    return request.app.state.reads


ReadsDep = Annotated[ReadEngines, Depends(get_reads)]
