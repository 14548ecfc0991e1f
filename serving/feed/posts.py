"""Post reads: one post with author info and counts, and its comments threaded and paged."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.feed import visible
from core.rows import TOP_LEVEL, nest
from serving.readers.base import Forbidden, NotFound, Unavailable
from serving.readers.bundle import Readers
from stores import graph, moderation
from stores import posts as post_store
from stores.users import display

REPLIES_PER_THREAD = 3


def visible_post(rd: Readers, viewer: str, post_id: int) -> dict[str, Any]:
    """The hydrated post if ``viewer`` may see it; NotFound if unknown or deleted, Forbidden if not allowed.

    Unavailable (503) if the post was not found but the lookup was incomplete (Cassandra down and the
    cache missing it): an unknown answer is never "no post".
    """
    loaded = rd.posts.load([post_id]).value
    post = loaded.value.get(post_id)
    if post is None and not loaded.complete:
        raise Unavailable(f"cassandra unavailable: post {post_id} is not cached")
    if post is None or post.get("deleted"):
        raise NotFound(f"no post {post_id}")
    if not rd.visibility.may_view(viewer, post):
        raise Forbidden(f"post {post_id} is not visible to {viewer}")
    return post


def may_engage(rd: Readers, viewer: str, post_id: int, author: str, visibility: str | None) -> None:
    """Raise as :func:`visible_post` would unless ``viewer`` may see (and so engage with) ``post_id``.

    The write API knows ``author`` (and the ``visibility`` it last accepted) from its ownership index
    before the fan-out topology stores the post; with them the decision is :meth:`Visibility.may_view`,
    the read's own rule. Without a recorded visibility the post is read as ``GET /v1/posts/{id}`` reads it.
    """
    if visibility is None:
        visible_post(rd, viewer, post_id)
    elif not rd.visibility.may_view(viewer, {"post_id": post_id, "author_id": author, "visibility": visibility}):
        raise Forbidden(f"post {post_id} is not visible to {viewer}")


async def may_engage_hot(redis: aioredis.Redis, viewer: str, post_id: int, author: str,
                         visibility: str | None) -> bool | None:
    """:func:`may_engage`'s decision from Redis in one async round trip, on the event loop: True
    (may see), False (hidden: moderation, deleted, blocked either way, FOLLOWERS/FRIENDS-only), or
    None when Redis cannot decide alone (no recorded visibility, a user's graph sets not loaded into
    this Redis, Redis failing): then :func:`may_engage` answers, as before. The same facts as
    :meth:`serving.readers.visibility.Visibility.may_view` reads through the thread pool."""
    if visibility is None:
        return None
    sid = str(post_id)
    p = redis.pipeline(transaction=False)
    p.sismember(moderation.HIDDEN, sid)
    p.sismember(post_store.DELETED, sid)
    p.exists(graph.k_loaded(viewer))
    p.exists(graph.k_loaded(author))
    p.sismember(graph.k_blocks(author), viewer)
    p.sismember(graph.k_blocks(viewer), author)
    p.sismember(graph.k_followers(author), viewer)
    p.sismember(graph.k_friends(author), viewer)
    try:
        hidden, deleted, ok_viewer, ok_author, b1, b2, follows, friend = await p.execute()
    except (RedisError, OSError):
        return None
    if hidden:
        return False
    if not (ok_viewer and ok_author):
        return None
    return visible(visibility, is_author=False, blocked=bool(b1 or b2), deleted=bool(deleted),
                   follows=bool(follows), is_friend=bool(friend))


def post_view(rd: Readers, viewer: str, post_id: int) -> dict[str, Any]:
    """A post with author info and counts; its author also sees a moderation LIMIT/REMOVE and why."""
    post = visible_post(rd, viewer, post_id)
    items = rd.items.items([post], viewer=viewer)
    out = {**items.value[0], "hydration_partial": not items.complete}
    if post["author_id"] == viewer:
        try:
            m = rd.visibility.graph.moderation(post_id)  # Redis, else Cassandra's durable copy
        except Unavailable:
            m = None
        if m is not None:
            out["moderation"] = {"decision": m["decision"], "reasons": m.get("reasons") or ["moderator"],
                                 "decided_by": "moderator" if "by" in m else "model",
                                 "reason": m.get("reason"), "appeal": f"/v1/posts/{post_id}/appeal"}
    return out


def _without_moderated(rd: Readers, viewer: str, comments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Comments minus others' comments hidden by moderation (Redis, else Cassandra's durable copy;
    Unavailable if neither answers)."""
    others = [c["comment_id"] for c in comments if c.get("user_id") != viewer]
    hidden = rd.visibility.graph.moderated_ids(others, comments=True)
    return [c for c in comments if c["comment_id"] not in hidden]


def comments_view(rd: Readers, viewer: str, post_id: int, thread: int, after: int, limit: int) -> dict[str, Any]:
    """A page of a visible post's comments: roots with their first replies, or one thread's replies."""
    visible_post(rd, viewer, post_id)
    page, replies = rd.comments.page(post_id, thread, after, limit, replies_cap=50 * limit)
    more = len(page) > limit
    page = page[:limit]
    page, replies = _without_moderated(rd, viewer, page), _without_moderated(rd, viewer, replies)
    people = rd.profiles.profiles(list({c["user_id"] for c in page + replies if c.get("user_id")}))

    def shape(c: dict[str, Any]) -> dict[str, Any]:
        return {"comment_id": c["comment_id"], "parent_id": c["parent_id"], "thread": c["thread"],
                "author": display(people.get(c["user_id"]), c["user_id"]), "text": c["text"],
                "deleted": bool(c["deleted"]), "created_at": c["created_at"]}

    items = nest([shape(c) for c in page], [shape(r) for r in replies], REPLIES_PER_THREAD) \
        if thread == TOP_LEVEL else [shape(c) for c in page]
    return {"items": items, "next_after": page[-1]["comment_id"] if more and page else None}
