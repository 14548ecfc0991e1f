"""``GET /v1/trending``: the current top-K of a trending scope, read from Redis (self-contained router)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from serving.deps import CurrentUser, ReadRateLimited, RedisDep
from serving.errors import READ_LIMITED, read_responses
from stores import moderation
from stores.trending import current_trending_async

router = APIRouter(prefix="/v1/trending", tags=["trending"], dependencies=[ReadRateLimited],
                   responses=READ_LIMITED)
HIDDEN_SLACK = 20  # extra entries read so a page stays full when moderation hides some


class Kind(str, Enum):
    hashtags = "hashtags"
    posts = "posts"
    viral_hashtags = "viral-hashtags"
    viral_posts = "viral-posts"


class TrendingItem(BaseModel):
    rank: int
    item: str
    score: float
    count: int
    velocity: float | None = None
    zscore: float | None = None


class TrendingList(BaseModel):
    scope: str
    window_start: int | None
    window_end: int | None
    updated_at: int | None
    items: list[TrendingItem]


@router.get("", response_model=TrendingList, summary="Current trending hashtags or posts for a window",
            responses=read_responses(401, 503, e503="Redis unavailable, retry later (see Retry-After)"))
async def get_trending(
    redis: RedisDep,
    user: CurrentUser,
    kind: Annotated[Kind, Query(description="what is ranked")] = Kind.hashtags,
    window: Annotated[str, Query(pattern=r"^\d+(ms|s|m|h|d)$", description="window size label, e.g. 1h or 1m")] = "1h",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> TrendingList:
    """The newest window's ranked list (empty ``items`` until the job has emitted one); needs a token.
    Posts hidden by moderation are left out (the list is read a little longer to fill ``limit``)."""
    if kind not in (Kind.posts, Kind.viral_posts):
        return TrendingList(**await current_trending_async(redis, f"{kind.value}:{window}", limit))
    out = await current_trending_async(redis, f"{kind.value}:{window}", limit + HIDDEN_SLACK)
    items = out["items"]
    hidden = await redis.smismember(moderation.HIDDEN, [i["item"] for i in items]) if items else []
    kept = [i for i, h in zip(items, hidden) if not h][:limit]
    return TrendingList(**{**out, "items": [{**i, "rank": n} for n, i in enumerate(kept, 1)]})
