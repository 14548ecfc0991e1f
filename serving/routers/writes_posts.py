"""Post writes: create, edit, delete -> ``posts.v1``; only the author may edit or delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from core.ids import MAX_ID, new_post_id
from serving import ownership
from serving.attach import media_refs
from serving.errors import responses
from serving.payloads import Accepted, PostIn
from serving.writes import Gated, Write, WriteDep, WriteRoute
from stores import media

router = APIRouter(prefix="/posts", tags=["posts"], dependencies=[Gated], route_class=WriteRoute,
                   responses=responses(400, 401, 403, 409, 413, 429, 503))
PostPath = Annotated[int, Path(ge=1, le=MAX_ID, description="time-sortable post id")]


async def authored_post(w: Write, post_id: int) -> str:
    """Return the author of a live post if it is the caller; 404 if unknown, 403 if someone else's."""
    author = await ownership.post_author(w.redis, post_id, w.durable, w.prefetched)
    if author is None:
        raise HTTPException(404, f"no post {post_id}")
    if author != w.user:
        raise HTTPException(403, f"only the author may change post {post_id}")
    return author


async def with_media(w: Write, body: PostIn, post_id: int) -> dict[str, Any]:
    """The event's content fields, uploaded media (``media_ids``) attached after their checks."""
    fields = body.event_fields()
    if body.media_ids:
        fields["media"] = fields["media"] + await media_refs(w, body.media_ids, post_id)
    return fields


@router.post("", status_code=202, response_model=Accepted, summary="Create a post (PostCreated)")
async def create_post(body: PostIn, w: WriteDep):
    async def act() -> dict:
        post_id = w.ids["post_id"]  # minted once per Idempotency-Key: a retry reuses it
        fields = await with_media(w, body, post_id)
        try:
            event_id = await w.emit("PostCreated", post_id=post_id, author_id=w.user, **fields)
        except BaseException:
            await media.detach(w.redis, body.media_ids, post_id)  # nothing written: the media stay free
            raise
        w.record_after(ownership.post_records(post_id, w.user, body.visibility.value))  # with the 202's call
        return {"event_id": event_id, "post_id": post_id}

    return await w.once(act, mint={"post_id": new_post_id})


@router.put("/{post_id}", status_code=202, response_model=Accepted, summary="Edit a post (PostEdited)",
            responses=responses(403, 404))
async def edit_post(post_id: PostPath, body: PostIn, w: WriteDep):
    async def act() -> dict:
        await authored_post(w, post_id)
        event_id = await w.emit("PostEdited", post_id=post_id, author_id=w.user, **await with_media(w, body, post_id))
        await ownership.record_visibility(w.redis, post_id, body.visibility.value)
        return {"event_id": event_id, "post_id": post_id}

    w.prefetch(*ownership.post_keys(post_id))
    return await w.once(act)


@router.delete("/{post_id}", status_code=202, response_model=Accepted, summary="Delete a post (PostDeleted)",
               responses=responses(403, 404))
async def delete_post(post_id: PostPath, w: WriteDep):
    async def act() -> dict:
        await authored_post(w, post_id)
        event_id = await w.emit("PostDeleted", post_id=post_id, author_id=w.user)
        await ownership.mark_post_deleted(w.redis, post_id)
        return {"event_id": event_id, "post_id": post_id}

    w.prefetch(*ownership.post_keys(post_id))
    return await w.once(act)

