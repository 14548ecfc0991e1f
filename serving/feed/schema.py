"""The feed page's documented shape. The route answers bytes encoded once with orjson (no pydantic pass
per request); these models only describe them in the OpenAPI document, and a test checks real
response bytes against that document (``additionalProperties: false`` everywhere)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Author(_Closed):
    user_id: str
    handle: str | None
    display_name: str | None
    avatar_url: str | None


class Counts(_Closed):
    likes: int
    comments: int
    shares: int
    reactions: dict[str, int]


class FeedItem(_Closed):
    post_id: int
    author_id: str
    text: str | None
    media: list[dict[str, Any]] | None
    links: list[str] | None
    hashtags: list[str] | None
    mentions: list[str] | None
    visibility: str | None
    edited: bool | None
    created_at: int | None
    updated_at: int | None
    author: Author
    counts: Counts | None


class Ranking(_Closed):
    requested: str
    applied: str
    ranker: str | None
    fallback: bool
    reason: str | None


class Freshness(_Closed):
    source: str
    applied: dict[str, str] | None
    age_ms: int | None
    fanout_watermarks: dict[str, int] | None


class Degraded(_Closed):
    source: str
    hydration_partial: bool
    notes: list[str]


class FeedPage(_Closed):
    """One page of a home feed."""

    items: list[FeedItem]
    next_cursor: str | None
    ranking: Ranking
    freshness: Freshness
    degraded: Degraded
    consistency: dict[str, Any] | None = None  # with X-Consistency-Token: whether the wait was satisfied
