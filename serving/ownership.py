"""Who wrote a post or a comment: the index the API keeps so only authors may edit or delete.

The API records ownership in Redis before producing the create event (a fresh id nobody else
knows yet), and removes it if Kafka does not confirm. When a durable posts table lands
(``stores.timelines``), :func:`post_author` is the one place to consult it on a Redis miss.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis


def post_key(post_id: int) -> str:
    return f"post:{post_id}:author"


def post_deleted_key(post_id: int) -> str:
    return f"post:{post_id}:deleted"


def comment_key(comment_id: int) -> str:
    return f"comment:{comment_id}"


@dataclass(frozen=True)
class CommentOwner:
    """The author of a comment and the post it is on."""

    user_id: str
    post_id: int


async def post_author(redis: aioredis.Redis, post_id: int) -> str | None:
    """Return the author of a live post, or None if it is unknown or deleted."""
    author, deleted = await redis.mget(post_key(post_id), post_deleted_key(post_id))
    if author is None or deleted is not None:
        return None
    return author.decode()


async def record_post(redis: aioredis.Redis, post_id: int, author_id: str) -> None:
    """Remember that ``author_id`` wrote ``post_id``."""
    await redis.set(post_key(post_id), author_id)


async def forget_post(redis: aioredis.Redis, post_id: int) -> None:
    """Undo :func:`record_post` for a create that Kafka did not confirm."""
    await redis.delete(post_key(post_id))


async def mark_post_deleted(redis: aioredis.Redis, post_id: int) -> None:
    """Mark a post deleted, so later edits and engagements get 404."""
    await redis.set(post_deleted_key(post_id), b"1")


async def comment_owner(redis: aioredis.Redis, comment_id: int) -> CommentOwner | None:
    """Return the author and post of a live comment, or None."""
    raw = await redis.hmget(comment_key(comment_id), "user", "post", "deleted")
    if raw[0] is None or raw[2] is not None:
        return None
    return CommentOwner(raw[0].decode(), int(raw[1]))


async def record_comment(redis: aioredis.Redis, comment_id: int, user_id: str, post_id: int) -> None:
    """Remember who wrote ``comment_id`` on which post."""
    await redis.hset(comment_key(comment_id), mapping={"user": user_id, "post": post_id})


async def forget_comment(redis: aioredis.Redis, comment_id: int) -> None:
    """Undo :func:`record_comment` for a comment Kafka did not confirm."""
    await redis.delete(comment_key(comment_id))


async def mark_comment_deleted(redis: aioredis.Redis, comment_id: int) -> None:
    """Mark a comment deleted, so a second delete gets 404."""
    await redis.hset(comment_key(comment_id), "deleted", 1)
