"""Graph facts for the read side: relations (blocks, follows, friendship), follow counts, edge pages,
hidden authors. Redis holds the hot sets; Cassandra the durable edge tables and counts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis as _redis
from cassandra.cluster import Session

from serving.readers.base import Down, Fallback, Guard, Unavailable
from stores import graph, moderation, readside
from stores import posts as post_store
from stores import timelines as tls

NO_COUNTS = {"followers": 0, "following": 0, "friends": 0}


@dataclass(frozen=True)
class Relation:
    """How a viewer stands to an author."""

    blocked: bool  # either blocks the other
    follows: bool  # the viewer follows the author
    friend: bool  # the viewer is the author's friend


SELF = Relation(blocked=False, follows=True, friend=True)


class GraphReader(Protocol):
    """Relations and follow counts from one engine."""

    @property
    def source(self) -> str: ...

    def relation(self, viewer: str, author: str) -> Relation:
        """``viewer``'s relation to ``author`` (raises :class:`~serving.readers.base.Down`)."""
        ...

    def counts(self, user: str) -> dict[str, int] | None:
        """Follower/following/friend counts (None if never written)."""
        ...


class RedisGraph:
    """The Redis follower/friend/block sets and each reader's hidden-author set.

    Redis runs without persistence: before reading a user's sets, the sets of users not loaded
    into this Redis (``g:ok:{u}`` absent, e.g. after a restart) are loaded from Cassandra's edge
    tables (:func:`stores.graph.ensure_loaded`; one EXISTS pipeline when warm). With Cassandra
    down the Redis sets are read as they are.
    """

    source = "redis"

    def __init__(self, redis: Guard[_redis.Redis], cassandra: Guard[Session] | None = None) -> None:
        self.redis, self.cassandra = redis, cassandra

    def _warm(self, r: _redis.Redis, users: list[str]) -> None:
        if self.cassandra is None or not graph.unloaded(r, users):
            return
        try:
            with self.cassandra.open() as s:
                graph.ensure_loaded(r, s, users)
        except Down:
            pass

    def relation(self, viewer: str, author: str) -> Relation:
        """Blocks both ways, follows and friendship in one pipelined round trip."""
        with self.redis.open() as r:
            self._warm(r, [viewer, author])
            p = r.pipeline(transaction=False)
            p.sismember(graph.k_blocks(author), viewer)
            p.sismember(graph.k_blocks(viewer), author)
            p.sismember(graph.k_followers(author), viewer)
            p.sismember(graph.k_friends(author), viewer)
            b1, b2, f, fr = p.execute()
            return Relation(bool(b1 or b2), bool(f), bool(fr))

    def follows_and_friends(self, viewer: str, authors: list[str]) -> dict[str, tuple[bool, bool]]:
        """``author -> (viewer follows, viewer is a friend)`` for each author, one round trip."""
        authors = list(dict.fromkeys(authors))
        if not authors:
            return {}
        with self.redis.open() as r:
            self._warm(r, authors)
            p = r.pipeline(transaction=False)
            for a in authors:
                p.sismember(graph.k_followers(a), viewer)
                p.sismember(graph.k_friends(a), viewer)
            flags = p.execute()
            return {a: (bool(flags[2 * i]), bool(flags[2 * i + 1])) for i, a in enumerate(authors)}

    def unhidden(self, viewer: str, posts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``posts`` minus those deleted (flag or deleted set) or by an author ``viewer`` hid."""
        with self.redis.open() as r:
            return cast(list[dict[str, Any]], tls.negative_filter(r, viewer, cast(list[Mapping[str, Any]], posts)))

    def moderation(self, post_id: int) -> dict[str, Any] | None:
        """The moderation part in force on ``post_id`` if it is hidden (LIMIT/REMOVE), else None."""
        with self.redis.open() as r:
            if not r.sismember(moderation.HIDDEN, str(post_id)):
                return None
            return moderation.effective(moderation.state(r, f"post:{post_id}")) or {"decision": "LIMIT"}

    def moderated_ids(self, post_ids: list[int], comments: bool = False) -> set[int]:
        """Which of ``post_ids`` (comment ids if ``comments``) moderation hides from everyone but their
        author (one SMISMEMBER)."""
        with self.redis.open() as r:
            return moderation.hidden(r, post_ids, moderation.HIDDEN_COMMENTS if comments else moderation.HIDDEN)

    def is_deleted(self, post_id: int) -> bool:
        """Whether ``post_id`` is in the deleted-post set."""
        with self.redis.open() as r:
            return bool(r.sismember(post_store.DELETED, str(post_id)))

    def counts(self, user: str) -> dict[str, int] | None:
        """Counts from the set cardinalities, the sets loaded from Cassandra first if this Redis lost
        them (if Cassandra cannot load them, it cannot give ``user_counts`` either: Redis as is)."""
        with self.redis.open() as r:
            self._warm(r, [user])
            return graph.counts(r, user)


class CassandraGraph:
    """The durable edge tables and ``user_counts``."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra

    def relation(self, viewer: str, author: str) -> Relation:
        """Blocks both ways, follows and friendship from the edge tables."""
        with self.cassandra.open() as s:
            blocked = readside.edge_exists(s, "blocks", author, viewer) or \
                readside.edge_exists(s, "blocks", viewer, author)
            return Relation(blocked, readside.edge_exists(s, "following", viewer, author),
                            readside.edge_exists(s, "friends", viewer, author))

    def counts(self, user: str) -> dict[str, int] | None:
        """Durable counts (None if never written)."""
        with self.cassandra.open() as s:
            return readside.counts(s, user)

    def moderation(self, post_id: int) -> dict[str, Any] | None:
        """:meth:`RedisGraph.moderation` from the durable copy (``moderation_decisions``): the part in
        force if it hides ``post_id``, else None."""
        with self.cassandra.open() as s:
            m, d = moderation.decisions_durable(s, [post_id]).get(post_id, (None, None))
            return (d or m) if moderation.is_hidden(m, d) else None

    def moderated_ids(self, post_ids: list[int], comments: bool = False) -> set[int]:
        """:meth:`RedisGraph.moderated_ids` from the durable copy (one ``IN`` read)."""
        with self.cassandra.open() as s:
            return moderation.hidden_durable(s, post_ids, "comment" if comments else "post")

    def edge_page(self, table: str, user: str, after: str, limit: int) -> list[str]:
        """``user``'s followers/following/friends/blocks above ``after`` (sorted by id)."""
        with self.cassandra.open() as s:
            return readside.edge_page(s, table, user, after, limit)


class Graph:
    """Graph reads from whichever engine answers, Redis first; edge pages from Cassandra."""

    def __init__(self, redis: RedisGraph, cassandra: CassandraGraph) -> None:
        self.redis, self.cassandra = redis, cassandra
        self._pick: Fallback[GraphReader] = Fallback(redis, cassandra)

    def relation(self, viewer: str, author: str) -> Relation:
        """``viewer``'s relation to ``author``; Unavailable if neither engine answers."""
        return self._pick.read(lambda g: g.relation(viewer, author)).value

    def counts(self, user: str) -> dict[str, int]:
        """Follow counts; zeros if never written or if neither engine answers."""
        try:
            counts = self._pick.read(lambda g: g.counts(user)).value
        except Unavailable:
            counts = None
        return counts or dict(NO_COUNTS)

    def moderation(self, post_id: int) -> dict[str, Any] | None:
        """The moderation part in force on ``post_id`` if it is hidden, else None: Redis's state, else
        (Redis down) the durable copy in Cassandra; Unavailable if neither answers (never "not hidden")."""
        try:
            return self.redis.moderation(post_id)
        except Down:
            pass
        try:
            return self.cassandra.moderation(post_id)
        except Down as exc:
            raise Unavailable("neither Redis nor Cassandra can check visibility (moderation)") from exc

    def moderated_ids(self, ids: list[int], comments: bool = False) -> set[int]:
        """Which of ``ids`` (comment ids if ``comments``) moderation hides from everyone but their author:
        Redis's hidden set, else (Redis down) the durable copy; Unavailable if neither answers."""
        if not ids:
            return set()
        try:
            return self.redis.moderated_ids(ids, comments)
        except Down:
            pass
        try:
            return self.cassandra.moderated_ids(ids, comments)
        except Down as exc:
            raise Unavailable("neither Redis nor Cassandra can say which content moderation hides") from exc

    def edges(self, table: str, user: str, after: str, limit: int) -> list[str]:
        """A page of ``user``'s ``table`` edges; Unavailable if Cassandra is down."""
        try:
            return self.cassandra.edge_page(table, user, after, limit)
        except Down as exc:
            raise Unavailable("cassandra unavailable: graph lists cannot be read") from exc
