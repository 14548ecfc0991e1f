"""Who wrote a post or a comment: the index the API keeps so only authors may edit or delete.

The API records a post's ownership in Redis once Kafka confirmed the create event, in the write's
last call and before its 202 (the id is fresh: nobody else knows it until then; a lost record is
found again in Cassandra), and a comment's before producing it, removed if Kafka does not confirm. On a Redis miss, :func:`post_author` and
:func:`comment_owner` consult the durable tables the topologies maintain in Cassandra
(``posts``, ``comment_threads``/``comments_by_post``) through :class:`DurableOwnership`, and
cache what they find. Keys and statements belong to :mod:`stores.posts` and :mod:`stores.comments`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from cassandra.cluster import Session

from core.settings import Settings
from stores import comments as comment_store
from stores import graph as graph_store
from stores import posts as post_store


@dataclass(frozen=True)
class CommentOwner:
    """The author of a comment and the post it is on."""

    user_id: str
    post_id: int


class DurableOwnership:
    """Look up authors in the Cassandra tables the topologies write; the session is opened on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._session: Session | None = None
        self._statements: dict[Callable[[Session], Any], Any] = {}
        self._lock = asyncio.Lock()

    async def _query(self, statement: Callable[[Session], Any], *params: Any) -> list[Any]:
        async with self._lock:
            if self._session is None:
                from stores.cassandra import session

                self._session = await asyncio.to_thread(session, self.settings)
            cassandra: Session = self._session
            if statement not in self._statements:
                self._statements[statement] = await asyncio.to_thread(statement, cassandra)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        rf = cassandra.execute_async(self._statements[statement], params)
        rf.add_callbacks(lambda rows: loop.call_soon_threadsafe(_settle, done, list(rows or ()), None),
                         lambda exc: loop.call_soon_threadsafe(_settle, done, None, exc))
        return await done

    async def query(self, statement: Callable[[Session], Any], *params: Any) -> list[Any]:
        """Run ``statement(session)`` (a prepared statement) with ``params`` on this session."""
        return await self._query(statement, *params)

    async def post(self, post_id: int) -> tuple[str, bool] | None:
        """``(author_id, deleted)`` of a stored post, or None."""
        rows = await self._query(post_store.owner_statement, post_id)
        if not rows or rows[0].author_id is None:
            return None
        return rows[0].author_id, bool(rows[0].deleted)

    async def comment(self, comment_id: int) -> tuple[CommentOwner, bool] | None:
        """The owner of a stored comment and whether it is deleted, or None."""
        where = await self._query(comment_store.thread_statement, comment_id)
        if not where:
            return None
        rows = await self._query(comment_store.owner_statement, where[0].post_id, where[0].thread, comment_id)
        if not rows or rows[0].user_id is None:
            return None
        return CommentOwner(rows[0].user_id, where[0].post_id), bool(rows[0].deleted)

    async def pending_request(self, from_id: str, to_id: str) -> bool:
        """Whether the graph topology recorded ``from_id``'s friend request to ``to_id`` as pending."""
        return bool(await self._query(graph_store.pending_request_statement, to_id, from_id))


async def friend_request_pending(redis: aioredis.Redis, from_id: str, to_id: str,
                                 durable: DurableOwnership | None = None) -> bool:
    """Whether ``from_id``'s friend request to ``to_id`` is pending in the graph view (Redis, then Cassandra).

    The view is written by the graph topology, so a request sent moments ago may not be in it yet.
    """
    if await redis.sismember(graph_store.k_requests(to_id), from_id):
        return True
    return durable is not None and await durable.pending_request(from_id, to_id)


def _settle(fut: asyncio.Future, value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)


def post_keys(post_id: int, visibility: bool = False) -> list[str]:
    """The keys :func:`post_author` (and with ``visibility``, :func:`post_visibility`) read: a write
    prefetches them in its first call (``serving.writes.Write.prefetch``)."""
    keys = [post_store.k_owner(post_id), post_store.k_owner_deleted(post_id)]
    return keys + [post_store.k_owner_visibility(post_id)] if visibility else keys


async def post_author(redis: aioredis.Redis, post_id: int, durable: DurableOwnership | None = None,
                      known: Mapping[str, bytes | None] | None = None) -> str | None:
    """Return the author of a live post, or None if it is unknown or deleted (Redis, then Cassandra).

    ``known``: values of :func:`post_keys` already read (the write's first call); else one MGET.
    """
    owner_key, deleted_key = post_store.k_owner(post_id), post_store.k_owner_deleted(post_id)
    if known is not None and owner_key in known and deleted_key in known:
        author, deleted = known[owner_key], known[deleted_key]
    else:
        author, deleted = await redis.mget(owner_key, deleted_key)
    if deleted is not None:
        return None
    if author is not None:
        return author.decode()
    found = await durable.post(post_id) if durable is not None else None
    if found is None:
        return None
    await record_post(redis, post_id, found[0])
    if found[1]:
        await mark_post_deleted(redis, post_id)
        return None
    return found[0]


def post_records(post_id: int, author_id: str, visibility: str) -> dict[str, str]:
    """What :func:`record_post` sets for a create, as SETs for the write's last call
    (``serving.writes.Write.record_after``)."""
    return {post_store.k_owner(post_id): author_id, post_store.k_owner_visibility(post_id): visibility}


async def record_post(redis: aioredis.Redis, post_id: int, author_id: str, visibility: str | None = None) -> None:
    """Remember that ``author_id`` wrote ``post_id`` (and, from a create, its visibility)."""
    if visibility is None:
        await redis.set(post_store.k_owner(post_id), author_id)
    else:
        await redis.mset({post_store.k_owner(post_id): author_id, post_store.k_owner_visibility(post_id): visibility})


async def record_visibility(redis: aioredis.Redis, post_id: int, visibility: str) -> None:
    """Remember the visibility an accepted edit gave ``post_id``."""
    await redis.set(post_store.k_owner_visibility(post_id), visibility)


async def post_visibility(redis: aioredis.Redis, post_id: int,
                          known: Mapping[str, bytes | None] | None = None) -> str | None:
    """The visibility the API last accepted for ``post_id``, or None if it did not record one (then the
    read side's post store is asked). ``known``: as :func:`post_author`'s."""
    key = post_store.k_owner_visibility(post_id)
    raw = known[key] if known is not None and key in known else await redis.get(key)
    return raw.decode() if raw is not None else None


async def forget_post(redis: aioredis.Redis, post_id: int) -> None:
    """Undo :func:`record_post` for a create that Kafka did not confirm."""
    await redis.delete(post_store.k_owner(post_id), post_store.k_owner_visibility(post_id))


async def mark_post_deleted(redis: aioredis.Redis, post_id: int) -> None:
    """Mark a post deleted, so later edits and engagements get 404."""
    await redis.set(post_store.k_owner_deleted(post_id), b"1")


async def comment_owner(redis: aioredis.Redis, comment_id: int,
                        durable: DurableOwnership | None = None) -> CommentOwner | None:
    """Return the author and post of a live comment, or None (Redis, then Cassandra)."""
    raw: list[bytes | None] = await cast(
        "Awaitable[list[bytes | None]]", redis.hmget(comment_store.k_owner(comment_id), ["user", "post", "deleted"]))
    if raw[2] is not None:
        return None
    if raw[0] is not None and raw[1] is not None:
        return CommentOwner(raw[0].decode(), int(raw[1]))
    found = await durable.comment(comment_id) if durable is not None else None
    if found is None:
        return None
    owner, deleted = found
    await record_comment(redis, comment_id, owner.user_id, owner.post_id)
    if deleted:
        await mark_comment_deleted(redis, comment_id)
        return None
    return owner


async def record_comment(redis: aioredis.Redis, comment_id: int, user_id: str, post_id: int) -> None:
    """Remember who wrote ``comment_id`` on which post."""
    await cast("Awaitable[int]", redis.hset(comment_store.k_owner(comment_id),
                                            mapping={"user": user_id, "post": post_id}))


async def forget_comment(redis: aioredis.Redis, comment_id: int) -> None:
    """Undo :func:`record_comment` for a comment Kafka did not confirm."""
    await redis.delete(comment_store.k_owner(comment_id))


async def mark_comment_deleted(redis: aioredis.Redis, comment_id: int) -> None:
    """Mark a comment deleted, so a second delete gets 404."""
    await cast("Awaitable[int]", redis.hset(comment_store.k_owner(comment_id), "deleted", "1"))
