"""User profiles: the Redis profile cache (read through to Cassandra) or the Cassandra ``users`` table."""

from __future__ import annotations

from typing import Any, Protocol

import redis as _redis
from cassandra.cluster import Session

from serving.readers.base import Down, Fallback, Guard, Partial, Unavailable
from stores import users as users_store

Profile = dict[str, Any]


class ProfileReader(Protocol):
    """Profiles by user id; unknown ids are absent; ``complete`` is False if some could not be looked up."""

    @property
    def source(self) -> str: ...

    def profiles(self, ids: list[str]) -> Partial[dict[str, Profile]]:
        """Profiles of ``ids`` (raises :class:`~serving.readers.base.Down` if this engine is down)."""
        ...


class RedisProfiles:
    """The Redis profile cache, reading misses through to Cassandra; cache-only while Cassandra is down."""

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis], cassandra: Guard[Session]) -> None:
        self.redis, self.cassandra = redis, cassandra

    def profiles(self, ids: list[str]) -> Partial[dict[str, Profile]]:
        """Cache then Cassandra; if Cassandra is down, complete only when the cache holds every id."""
        with self.redis.open() as r:
            try:
                with self.cassandra.open() as s:
                    return Partial(users_store.get_users(s, r, ids))
            except Down:
                people = users_store.get_users(None, r, ids)
                return Partial(people, len(people) == len(set(ids)))


class CassandraProfiles:
    """The Cassandra ``users`` table."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra

    def profiles(self, ids: list[str]) -> Partial[dict[str, Profile]]:
        """Profiles from one IN query."""
        with self.cassandra.open() as s:
            return Partial(users_store.stored_users(s, ids))


class Profiles:
    """Profiles from whichever engine answers, Redis first."""

    def __init__(self, redis: RedisProfiles, cassandra: CassandraProfiles) -> None:
        self.redis, self.cassandra = redis, cassandra
        self._pick: Fallback[ProfileReader] = Fallback(redis, cassandra)

    def profiles(self, ids: list[str]) -> dict[str, Profile]:
        """Profiles of ``ids``; Unavailable if neither engine answers."""
        return self._pick.read(lambda reader: reader.profiles(ids)).value.value

    def profile(self, user_id: str) -> Profile | None:
        """One user's profile, or None if unknown; Unavailable if it was not found but the lookup was
        incomplete (Cassandra down and the cache missing it), so "unknown" never reads as "no user"."""
        got = self._pick.read(lambda reader: reader.profiles([user_id])).value
        prof = got.value.get(user_id)
        if prof is None and not got.complete:
            raise Unavailable(f"cassandra unavailable: user {user_id} is not cached")
        return prof
