"""Post reads over HTTP: ``GET /v1/posts/{id}`` with counts, and its comments, threaded and paged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from core.ids import MAX_ID
from serving.consistency import TokenHeader, answer, settle, with_consistency
from serving.deps import CurrentUser, ReadRateLimited
from serving.errors import READ_LIMITED, read_responses
from serving.feed.engines import ReadsDep
from serving.feed.posts import comments_view, post_view

router = APIRouter(prefix="/posts/{post_id}", tags=["posts"], dependencies=[ReadRateLimited],
                   responses=READ_LIMITED)
PostPath = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("", summary="A post with author info and engagement counts",
            responses=read_responses(401, 403, 404, 503, e404="no such post, or deleted"))
async def get_post(request: Request, post_id: PostPath, user: CurrentUser, e: ReadsDep,
                   token: TokenHeader = None) -> dict[str, Any]:
    info = await settle(request, "post", user, token, own=True)  # one's own new post, by default
    return await answer(info, e.run(post_view, e.readers, user, post_id))


@router.get("/comments", summary="A post's comments: roots oldest first with their first replies, "
                                 "or one thread's replies (thread=root id)",
            responses=read_responses(400, 401, 403, 404, 503, e404="no such post, or deleted"))
async def get_comments(
    request: Request, post_id: PostPath, user: CurrentUser, e: ReadsDep,
    thread: Annotated[int, Query(ge=0, le=MAX_ID, description="0 = top-level comments")] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    token: TokenHeader = None,
) -> dict[str, Any]:
    scope = f"comments:{post_id}:{thread}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, int):
        raise HTTPException(400, "invalid cursor: not a comments position")
    info = await settle(request, "comments", user, token, own=False)
    out = await e.run(comments_view, e.readers, user, post_id, thread, pos.before if pos else 0, limit)
    return with_consistency({"items": out["items"], "next_cursor": e.cursor_out(scope, out.pop("next_after"))}, info)
