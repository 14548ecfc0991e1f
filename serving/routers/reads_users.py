"""User reads over HTTP: profile with counts, followers/following lists, a user's own posts (paged)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from serving.consistency import TokenHeader, answer, settle, with_consistency
from serving.deps import CurrentUser, ReadRateLimited
from serving.errors import READ_LIMITED, read_responses
from serving.feed.engines import ReadEngines, ReadsDep
from serving.feed.users import edges_view, profile_view, user_posts_view
from serving.payloads import USER_ID_PATTERN

router = APIRouter(prefix="/users/{user_id}", tags=["users"], dependencies=[ReadRateLimited],
                   responses=READ_LIMITED)
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]
EDGE_ERRORS = read_responses(400, 401, 404, 503, e404="no such user")


@router.get("", summary="A user's profile with follower and following counts",
            responses=read_responses(401, 404, 503, e404="no such user"))
async def get_profile(request: Request, user_id: UserPath, user: CurrentUser, e: ReadsDep,
                      token: TokenHeader = None) -> dict[str, Any]:
    info = await settle(request, "profile", user, token, own=user_id == user)
    return await answer(info, e.run(profile_view, e.readers, user_id))


async def _edges(request: Request, table: str, user_id: str, user: str, e: ReadEngines, limit: int,
                 cursor: str | None, token: str | None) -> dict[str, Any]:
    scope = f"{table}:{user_id}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, str):
        raise HTTPException(400, "invalid cursor: not a list position")
    info = await settle(request, "edges", user, token, own=user_id == user)
    items, after = await e.run(edges_view, e.readers, table, user_id, pos.before if pos else "", limit)
    return with_consistency({"items": items, "next_cursor": e.cursor_out(scope, after)}, info)


@router.get("/followers", summary="Who follows the user (paged, by user id)", responses=EDGE_ERRORS)
async def get_followers(request: Request, user_id: UserPath, user: CurrentUser, e: ReadsDep, limit: Limit = 50,
                        cursor: Cursor = None, token: TokenHeader = None) -> dict[str, Any]:
    return await _edges(request, "followers", user_id, user, e, limit, cursor, token)


@router.get("/following", summary="Whom the user follows (paged, by user id)", responses=EDGE_ERRORS)
async def get_following(request: Request, user_id: UserPath, user: CurrentUser, e: ReadsDep, limit: Limit = 50,
                        cursor: Cursor = None, token: TokenHeader = None) -> dict[str, Any]:
    return await _edges(request, "following", user_id, user, e, limit, cursor, token)


@router.get("/posts", summary="A user's own posts visible to the caller, newest first",
            responses=read_responses(400, 401, 403, 404, 503, e403="the author blocks the caller",
                                     e404="no such user"))
async def get_user_posts(request: Request, user_id: UserPath, user: CurrentUser, e: ReadsDep, limit: Limit = 20,
                         cursor: Cursor = None, token: TokenHeader = None) -> dict[str, Any]:
    scope = f"posts:{user_id}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, int):
        raise HTTPException(400, "invalid cursor: not a posts position")
    info = await settle(request, "user_posts", user, token, own=user_id == user)
    out = await e.run(user_posts_view, e.readers, user, user_id, pos.before if pos else None, limit)
    return with_consistency({"items": out["items"], "next_cursor": e.cursor_out(scope, out["next_before"]),
                             "hydration_partial": out["hydration_partial"]}, info)
