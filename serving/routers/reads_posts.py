"""Post reads: ``GET /v1/posts/{id}`` with counts, and its comments, threaded and paged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from core.ids import MAX_ID
from core.rows import TOP_LEVEL, nest
from serving.deps import CurrentUser
from serving.feed import hydrate
from serving.feed.engines import ReadEngines, ReadsDep, Unavailable
from stores.comments import CommentStore
from stores.users import display

router = APIRouter(prefix="/posts/{post_id}", tags=["posts"])
PostPath = Annotated[int, Path(ge=1, le=MAX_ID)]
REPLIES_PER_THREAD = 3
_stores: dict[int, CommentStore] = {}


def visible_post(e: ReadEngines, viewer: str, post_id: int) -> dict[str, Any]:
    """The hydrated post if ``viewer`` may see it; 404 if unknown or deleted, 403 if not allowed."""
    posts, _ = hydrate.load_posts(e, [post_id])
    post = posts.get(post_id)
    if post is None or post.get("deleted"):
        raise HTTPException(404, f"no post {post_id}")
    if not hydrate.may_view(e, viewer, post):
        raise HTTPException(403, f"post {post_id} is not visible to {viewer}")
    return post


def post_view(e: ReadEngines, viewer: str, post_id: int) -> dict[str, Any]:
    """A post with author info and counts."""
    post = visible_post(e, viewer, post_id)
    enriched, _ = e.red(lambda r: hydrate.enrich(e, [post], via_redis=True), None)
    items, complete = enriched or hydrate.enrich(e, [post], via_redis=False)
    return {**items[0], "hydration_partial": not complete}


@router.get("", summary="A post with author info and engagement counts")
async def get_post(post_id: PostPath, user: CurrentUser, e: ReadsDep) -> dict[str, Any]:
    return await e.run(post_view, e, user, post_id)


def _comments(e: ReadEngines, viewer: str, post_id: int, thread: int, after: int, limit: int) -> dict[str, Any]:
    visible_post(e, viewer, post_id)

    def read(s: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        store = _stores.get(id(s)) or _stores.setdefault(id(s), CommentStore(s))
        page = store.page(post_id, thread, after, limit + 1)
        replies = store.replies(post_id, [c["comment_id"] for c in page[:limit]], 50 * limit) \
            if thread == TOP_LEVEL else []
        return page, replies

    got, _ = e.cass(read, None)
    if got is None:
        raise Unavailable("cassandra unavailable: comments cannot be read")
    page, replies = got
    more = len(page) > limit
    page = page[:limit]
    people = hydrate.profiles(e, list({c["user_id"] for c in page + replies if c.get("user_id")}))

    def shape(c: dict[str, Any]) -> dict[str, Any]:
        return {"comment_id": c["comment_id"], "parent_id": c["parent_id"], "thread": c["thread"],
                "author": display(people.get(c["user_id"]), c["user_id"]), "text": c["text"],
                "deleted": bool(c["deleted"]), "created_at": c["created_at"]}

    items = nest([shape(c) for c in page], [shape(r) for r in replies], REPLIES_PER_THREAD) \
        if thread == TOP_LEVEL else [shape(c) for c in page]
    return {"items": items, "next_after": page[-1]["comment_id"] if more and page else None}


@router.get("/comments", summary="A post's comments: roots oldest first with their first replies, "
                                 "or one thread's replies (thread=root id)")
async def get_comments(
    post_id: PostPath, user: CurrentUser, e: ReadsDep,
    thread: Annotated[int, Query(ge=0, le=MAX_ID, description="0 = top-level comments")] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    scope = f"comments:{post_id}:{thread}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, int):
        raise HTTPException(400, "invalid cursor: not a comments position")
    out = await e.run(_comments, e, user, post_id, thread, pos.before if pos else 0, limit)
    return {"items": out["items"], "next_cursor": e.cursor_out(scope, out.pop("next_after"))}
