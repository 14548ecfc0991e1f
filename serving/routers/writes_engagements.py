"""Engagements on a post: like, comment, share, react -> ``engagements.v1``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from core.ids import MAX_ID, new_id
from serving import ownership
from serving.errors import responses
from serving.feed.engines import ReadEngines, ReadsDep
from serving.feed.posts import may_engage, may_engage_hot
from serving.payloads import Accepted, CommentIn, ReactionKind, ShareIn
from serving.writes import Gated, Write, WriteDep, WriteRoute

router = APIRouter(prefix="/posts/{post_id}", tags=["engagements"], dependencies=[Gated], route_class=WriteRoute,
                   responses=responses(400, 401, 403, 404, 409, 413, 429, 503))
PostPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the post engaged with")]
CommentPath = Annotated[int, Path(ge=1, le=MAX_ID)]


async def _author_of(w: Write, post_id: int) -> str:
    author = await ownership.post_author(w.redis, post_id, w.durable, w.prefetched)
    if author is None:
        raise HTTPException(404, f"no post {post_id}")
    return author


async def _visible_author_of(w: Write, e: ReadEngines, post_id: int) -> str:
    """The author of a live post ``w.user`` may see, by the read side's rule: 404 as the read answers for an
    unknown or deleted post, 403 if hidden from the caller (blocked, FRIENDS/FOLLOWERS-only), 503 if no
    engine can tell. Engaging with a post is seeing it, so a post ``GET /v1/posts/{id}`` refuses takes none.
    """
    author = await _author_of(w, post_id)
    if author != w.user:
        visibility = await ownership.post_visibility(w.redis, post_id, w.prefetched)
        hot = await may_engage_hot(w.redis, w.user, post_id, author, visibility)  # one round trip, no thread hop
        if hot is False:
            raise HTTPException(403, f"post {post_id} is not visible to {w.user}")
        if hot is None:
            await e.run(may_engage, e.readers, w.user, post_id, author, visibility)
    return author


async def _engage(w: Write, post_id: int, record: str, e: ReadEngines | None = None, **extra: object):
    """Produce ``record`` on ``post_id``; with ``e`` (an engagement that adds), only on a post the caller may
    see. Retractions (unlike, remove a reaction) take ``e=None``: withdrawing one's own engagement from a
    post that became hidden (e.g. its author blocked you since) must stay possible, and adds nothing."""
    async def act() -> dict:
        author = await (_visible_author_of(w, e, post_id) if e is not None else _author_of(w, post_id))
        event_id = await w.emit(record, post_id=post_id, post_author_id=author, user_id=w.user, **extra)
        return {"event_id": event_id, "post_id": post_id}

    w.prefetch(*ownership.post_keys(post_id, visibility=e is not None))  # read in the write's first call
    return await w.once(act)


@router.put("/like", status_code=202, response_model=Accepted, summary="Like (Liked)")
async def like(post_id: PostPath, w: WriteDep, e: ReadsDep):
    return await _engage(w, post_id, "Liked", e)


@router.delete("/like", status_code=202, response_model=Accepted, summary="Unlike (Unliked)")
async def unlike(post_id: PostPath, w: WriteDep):
    return await _engage(w, post_id, "Unliked")


@router.post("/shares", status_code=202, response_model=Accepted, summary="Share (Shared)")
async def share(post_id: PostPath, body: ShareIn, w: WriteDep, e: ReadsDep):
    return await _engage(w, post_id, "Shared", e, comment=body.comment)


@router.put("/reactions/{kind}", status_code=202, response_model=Accepted, summary="React (ReactionAdded)")
async def react(post_id: PostPath, kind: ReactionKind, w: WriteDep, e: ReadsDep):
    return await _engage(w, post_id, "ReactionAdded", e, kind=kind.value)


@router.delete("/reactions/{kind}", status_code=202, response_model=Accepted,
               summary="Remove a reaction (ReactionRemoved)")
async def unreact(post_id: PostPath, kind: ReactionKind, w: WriteDep):
    return await _engage(w, post_id, "ReactionRemoved", kind=kind.value)


@router.post("/comments", status_code=202, response_model=Accepted, summary="Comment or reply (CommentAdded)")
async def comment(post_id: PostPath, body: CommentIn, w: WriteDep, e: ReadsDep):
    async def act() -> dict:
        author = await _visible_author_of(w, e, post_id)
        if body.parent_comment_id is not None:
            parent = await ownership.comment_owner(w.redis, body.parent_comment_id, w.durable)
            if parent is None or parent.post_id != post_id:
                raise HTTPException(422, [{"loc": ["body", "parent_comment_id"], "type": "unknown_parent",
                                           "msg": f"no comment {body.parent_comment_id} on post {post_id}"}])
        comment_id = w.ids["comment_id"]  # minted once per Idempotency-Key: a retry reuses it
        await ownership.record_comment(w.redis, comment_id, w.user, post_id)
        try:
            event_id = await w.emit("CommentAdded", comment_id=comment_id, post_id=post_id, post_author_id=author,
                                    user_id=w.user, text=body.text, parent_comment_id=body.parent_comment_id)
        except BaseException:
            await ownership.forget_comment(w.redis, comment_id)
            raise
        return {"event_id": event_id, "post_id": post_id, "comment_id": comment_id}

    w.prefetch(*ownership.post_keys(post_id, visibility=True))
    return await w.once(act, mint={"comment_id": new_id})


@router.delete("/comments/{comment_id}", status_code=202, response_model=Accepted,
               summary="Delete your comment (CommentDeleted)", responses=responses(403))
async def delete_comment(post_id: PostPath, comment_id: CommentPath, w: WriteDep):
    async def act() -> dict:
        owner = await ownership.comment_owner(w.redis, comment_id, w.durable)
        if owner is None or owner.post_id != post_id:
            raise HTTPException(404, f"no comment {comment_id} on post {post_id}")
        if owner.user_id != w.user:
            raise HTTPException(403, f"only the comment's author may delete comment {comment_id}")
        author = await _author_of(w, post_id)
        event_id = await w.emit("CommentDeleted", comment_id=comment_id, post_id=post_id,
                                post_author_id=author, user_id=w.user)
        await ownership.mark_comment_deleted(w.redis, comment_id)
        return {"event_id": event_id, "post_id": post_id, "comment_id": comment_id}

    return await w.once(act)
