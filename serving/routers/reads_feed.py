"""``GET /v1/users/{user_id}/feed``: the owner's home feed (chronological or ranked), paged by cursor."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response

from serving.auth import require_self
from serving.consistency import TokenHeader, settle, with_consistency
from serving.deps import CurrentUser, ReadRateLimited
from serving.errors import READ_LIMITED, read_responses
from serving.feed.engines import ReadsDep
from serving.feed.fast import encode, fast_feed
from serving.feed.pipeline import read_known_feed
from serving.feed.schema import FeedPage
from serving.payloads import USER_ID_PATTERN

router = APIRouter(prefix="/users/{user_id}", tags=["feed"], dependencies=[ReadRateLimited],
                   responses=READ_LIMITED)
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]
ERRORS: dict[int | str, dict[str, Any]] = read_responses(
    400, 401, 403, 404, 503, e403="another user's feed", e404="unknown user",
    e503="neither Redis nor Cassandra answers (see Retry-After)")


class Algorithm(str, Enum):
    chronological = "chronological"
    ranked = "ranked"


@router.get("/feed", summary="Home feed: candidates, hydrate, filter, order, page", responses=ERRORS,
            response_model=FeedPage)
async def get_feed(
    request: Request, user_id: UserPath, user: CurrentUser, e: ReadsDep,
    algorithm: Algorithm = Algorithm.chronological,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
    token: TokenHeader = None,
) -> Response:
    """One page: ``items``, ``next_cursor`` (null at the end), ``ranking``, ``freshness``, ``degraded``.

    The common request (the owner's valid token, valid parameters, no consistency token) is served
    by the thin route in front of this one (:mod:`serving.feed.thin`: no dependency resolution, the
    read rate limit inside the page script); this route documents the operation and answers every
    other request. The common page is served on the event loop (:func:`~serving.feed.fast.fast_feed`);
    anything else (rebuilds, misses, refills, degradation) by the full pipeline on the read pool.
    Either way the bytes are encoded once with orjson.
    """
    require_self(user, user_id)
    pos = e.cursor_in(f"feed:{user_id}", cursor)
    if pos is not None and not isinstance(pos.before, int):
        raise HTTPException(400, "invalid cursor: not a feed position")
    before = pos.before if pos else None
    # the feed is eventually consistent: it waits only when given a token (no extra round trip
    # otherwise), and then for the reader's own newest writes too (e.g. the sign-up before a follow)
    info = None if token is None else await settle(request, "feed", user, token, own=True)
    page = await fast_feed(e, user_id, algorithm.value, limit, before)
    if page is None:
        page = await e.run(read_known_feed, e, user_id, algorithm.value, limit, before)
    if page is None:
        raise HTTPException(404, f"no user {user_id}")
    return Response(encode(with_consistency(page, info)), media_type="application/json")
