"""API items: posts with their author's display block and engagement counts (and affinity).

:class:`RedisItems` reads profiles through the Redis cache and the hot counts; :class:`CassandraItems`
reads the durable tables and degrades to empty parts instead of failing. :class:`Items` asks Redis
first and falls back to Cassandra as a whole, as the read path always has.
"""

from __future__ import annotations

from typing import Any, Protocol

from serving.readers.base import Down, Partial
from serving.readers.engagement import CassandraEngagement, RedisEngagement, Totals
from serving.readers.media import RedisMedia
from serving.readers.profiles import CassandraProfiles, Profile, RedisProfiles
from stores.users import display

Post = dict[str, Any]
Item = dict[str, Any]
PUBLIC_FIELDS = ("post_id", "author_id", "text", "media", "links", "hashtags", "mentions", "visibility",
                 "edited", "created_at", "updated_at")


class ItemReader(Protocol):
    """Posts -> API items; ``complete`` is False when authors or counts could not all be read."""

    @property
    def source(self) -> str: ...

    def items(self, posts: list[Post], reader: str | None) -> Partial[list[Item]]:
        """Items for ``posts``, with ``affinity`` to ``reader`` where the engine keeps it."""
        ...


def shape(posts: list[Post], people: dict[str, Profile], counts: dict[int, Totals],
          affinity: dict[str, int] | None) -> list[Item]:
    """The public fields of each post plus ``author``, ``counts`` (and ``affinity`` if given)."""
    items = []
    for p in posts:
        item = {k: p.get(k) for k in PUBLIC_FIELDS}
        item["author"] = display(people.get(p["author_id"]), p["author_id"])
        item["counts"] = counts.get(p["post_id"])
        if affinity is not None:
            item["affinity"] = affinity.get(p["author_id"], 0)
        items.append(item)
    return items


def _ids(posts: list[Post]) -> tuple[list[int], list[str]]:
    return [p["post_id"] for p in posts], list(dict.fromkeys(p["author_id"] for p in posts))


class RedisItems:
    """Profiles via the Redis cache and hot counts (both read through to Cassandra), affinity from Redis."""

    source = "redis"

    def __init__(self, profiles: RedisProfiles, engagement: RedisEngagement) -> None:
        self.profiles, self.engagement = profiles, engagement

    def items(self, posts: list[Post], reader: str | None) -> Partial[list[Item]]:
        """Items; complete unless Cassandra was down and a cache (profiles, hot counts) missed."""
        ids, authors = _ids(posts)
        people = self.profiles.profiles(authors)
        counts = self.engagement.counts_partial(ids)
        affinity = self.engagement.affinity(reader, authors) if reader is not None else None
        return Partial(shape(posts, people.value, counts.value, affinity),
                       people.complete and counts.complete)


class CassandraItems:
    """Profiles and totals from Cassandra; a part that cannot be read is left empty (never ``Down``)."""

    source = "cassandra"

    def __init__(self, profiles: CassandraProfiles, engagement: CassandraEngagement) -> None:
        self.profiles, self.engagement = profiles, engagement

    def items(self, posts: list[Post], reader: str | None = None) -> Partial[list[Item]]:
        """Items without affinity (Cassandra keeps none); incomplete if either table could not be read."""
        ids, authors = _ids(posts)
        try:
            people, ok_people = self.profiles.profiles(authors).value, True
        except Down:
            people, ok_people = {}, False
        try:
            counts, ok_counts = self.engagement.counts(ids), True
        except Down:
            counts, ok_counts = {}, False
        return Partial(shape(posts, people, counts, None), ok_people and ok_counts)


class Items:
    """API items, Redis first; Cassandra (degrading, never failing) when Redis is down. Uploaded media
    get their processing outcome and variant URLs (:mod:`serving.readers.media`) either way."""

    def __init__(self, redis: RedisItems, cassandra: CassandraItems, media: RedisMedia | None = None) -> None:
        self.redis, self.cassandra, self.media = redis, cassandra, media

    def items(self, posts: list[Post], *, reader: str | None = None,
              redis_first: bool = True, viewer: str | None = None) -> Partial[list[Item]]:
        """Items for ``posts``; ``redis_first=False`` goes straight to Cassandra (a Cassandra-served page).

        ``viewer`` (default ``reader``) is who reads: a post's author also sees its rejected media and why.
        """
        out = self._items(posts, reader, redis_first)
        if self.media is not None:
            self.media.hydrate(out.value, viewer if viewer is not None else reader)
        return out

    def _items(self, posts: list[Post], reader: str | None, redis_first: bool) -> Partial[list[Item]]:
        if redis_first:
            try:
                return self.redis.items(posts, reader)
            except Down:
                pass
        return self.cassandra.items(posts)
