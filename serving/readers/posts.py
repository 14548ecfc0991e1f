"""Post content for hydration: the Redis post cache (read through to Cassandra) or Cassandra alone,
and the Cassandra author index (``posts_by_author``)."""

from __future__ import annotations

import json
from typing import Any, Protocol, cast

import redis as _redis
from cassandra.cluster import Session

from serving.readers.base import Down, Fallback, Guard, Partial, Served, Unavailable
from stores import posts as post_store
from stores import redis as redis_store

Post = dict[str, Any]


class PostsReader(Protocol):
    """Posts by id; unknown ids are absent; ``complete`` is False if some could not be looked up."""

    @property
    def source(self) -> str: ...

    def posts(self, ids: list[int]) -> Partial[dict[int, Post]]:
        """Hydrate ``ids`` (raises :class:`~serving.readers.base.Down` if this engine is down)."""
        ...


def cached_posts(r: _redis.Redis, ids: list[int]) -> dict[int, Post]:
    """Posts present in the Redis content cache only."""
    raws = cast(list[bytes | None], redis_store.mget(r, [post_store.k_post(i) for i in ids]))
    return {i: json.loads(raw) for i, raw in zip(ids, raws) if raw}


class CassandraPosts:
    """The ``posts`` table and the author index, Cassandra only."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra

    def posts(self, ids: list[int]) -> Partial[dict[int, Post]]:
        """Posts from the ``posts`` table (one IN query)."""
        with self.cassandra.open() as s:
            return Partial(post_store.stored_posts(s, ids))

    def by_author(self, author: str, before: int | None, limit: int) -> list[tuple[int, str]]:
        """``author``'s newest ``(post_id, visibility)`` below ``before``, newest first."""
        with self.cassandra.open() as s:
            return post_store.author_posts(s, author, before, limit)


class RedisPosts:
    """The Redis post cache, reading misses through to Cassandra; cache-only while Cassandra is down."""

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis], cassandra: Guard[Session]) -> None:
        self.redis, self.cassandra = redis, cassandra

    def posts(self, ids: list[int]) -> Partial[dict[int, Post]]:
        """Posts via the cache and Cassandra; incomplete if Cassandra is down and the cache misses some."""
        with self.redis.open() as r:
            if not ids:
                return Partial({})
            try:
                with self.cassandra.open() as s:
                    return Partial(post_store.get_posts(s, r, ids))
            except Down:
                got = cached_posts(r, ids)
                return Partial(got, len(got) == len(ids))


class Posts:
    """Posts by id, Redis (with read-through) first, else Cassandra."""

    def __init__(self, redis: RedisPosts, cassandra: CassandraPosts) -> None:
        self.redis, self.cassandra = redis, cassandra
        self._pick: Fallback[PostsReader] = Fallback(redis, cassandra)

    def load(self, ids: list[int]) -> Served[Partial[dict[int, Post]]]:
        """Hydrate ``ids`` from whichever engine answers; Unavailable if neither does."""
        return self._pick.read(lambda reader: reader.posts(ids))

    def by_author(self, author: str, before: int | None, limit: int) -> list[tuple[int, str]]:
        """The author index page (Cassandra holds it alone); Unavailable if Cassandra is down."""
        try:
            return self.cassandra.by_author(author, before, limit)
        except Down as exc:
            raise Unavailable("cassandra unavailable: the author index cannot be read") from exc
