"""The owner's notifications over HTTP: list (paged), unread count, mark read (the notifications reader)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from serving.auth import require_self
from serving.deps import CurrentUser, ReadRateLimited
from serving.errors import READ_LIMITED, read_responses
from serving.feed.engines import ReadsDep
from serving.payloads import USER_ID_PATTERN

router = APIRouter(prefix="/users/{user_id}/notifications", tags=["notifications"], dependencies=[ReadRateLimited],
                   responses=READ_LIMITED)
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
OWNER_ONLY = "another user's notifications"


class MarkRead(BaseModel):
    """Mark notifications created at or before ``up_to`` (epoch ms; default: all) read."""

    up_to: int | None = Field(None, ge=0, le=253_402_300_799_999)  # epoch ms, at most 9999-12-31 (µs must fit a bigint)


@router.get("", summary="The caller's notifications, newest first",
            responses=read_responses(400, 401, 403, 503, e403=OWNER_ONLY))
async def list_notifications(
    user_id: UserPath, user: CurrentUser, e: ReadsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> dict[str, Any]:
    require_self(user, user_id)
    scope = f"notifications:{user_id}"
    pos = e.cursor_in(scope, cursor)
    if pos is not None and not isinstance(pos.before, int):
        raise HTTPException(400, "invalid cursor: not a notifications position")
    rows = await e.run(e.readers.notifications.page, user_id, limit + 1, pos.before if pos else None)
    page = rows[:limit]
    nxt = page[-1]["created_at"] if len(rows) > limit else None
    return {"items": page, "next_cursor": e.cursor_out(scope, nxt)}


@router.get("/unread-count", summary="How many notifications are unread (capped)",
            responses=read_responses(401, 403, 503, e403=OWNER_ONLY))
async def unread_count(user_id: UserPath, user: CurrentUser, e: ReadsDep) -> dict[str, int]:
    require_self(user, user_id)
    return {"unread": await e.run(e.readers.notifications.unread, user_id)}


@router.post("/read", summary="Mark notifications read up to a time (default: all)",
             responses=read_responses(400, 401, 403, 503, e403=OWNER_ONLY,
                                      e400="the body is not JSON at all (a JSON body of the wrong shape is 422)"))
async def mark_read(user_id: UserPath, user: CurrentUser, e: ReadsDep, body: MarkRead | None = None) -> dict[str, int]:
    require_self(user, user_id)
    up_to = body.up_to if body else None
    return {"read_until": await e.run(e.readers.notifications.mark_read, user_id, up_to)}
