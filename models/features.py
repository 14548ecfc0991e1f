"""Feature extraction shared by training and serving: pure, deterministic, fixed column order.

An item is a hydrated feed item as the read API builds it (``post_id``, ``text``, ``media``,
``hashtags``, ``counts``, ``affinity``); author context (follower count, friendship with the
reader) comes separately as :class:`AuthorContext`. Missing values become NaN, which LightGBM
treats as "missing" natively.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.ids import id_timestamp_ms

FEATURE_NAMES: tuple[str, ...] = (
    "age_h",             # hours since the post id was issued
    "likes",
    "comments",
    "shares",
    "reactions",         # sum over reaction kinds
    "affinity",          # reader's standing engagements with the author (hot_affinity)
    "n_images",
    "n_videos",
    "text_len",
    "n_hashtags",
    "n_links",
    "author_followers_log",  # log1p(follower count)
    "is_friend",
)
NAN = float("nan")


@dataclass(frozen=True)
class AuthorContext:
    """What the ranker knows about an author relative to the reader."""

    followers: int | None = None
    is_friend: bool | None = None


def item_features(item: Mapping[str, Any], now_ms: int, ctx: AuthorContext | None = None) -> list[float]:
    """The feature row of one item at ``now_ms``, in :data:`FEATURE_NAMES` order."""
    c = item.get("counts") or {}
    media = item.get("media") or []
    kinds = [m.get("kind") for m in media]
    aff = item.get("affinity")
    ctx = ctx or AuthorContext()
    return [
        max(0.0, (now_ms - id_timestamp_ms(int(item["post_id"]))) / 3_600_000),
        float(c.get("likes", 0)) if c else NAN,
        float(c.get("comments", 0)) if c else NAN,
        float(c.get("shares", 0)) if c else NAN,
        float(sum((c.get("reactions") or {}).values())) if c else NAN,
        float(aff) if aff is not None else NAN,
        float(kinds.count("IMAGE")),
        float(kinds.count("VIDEO")),
        float(len(item.get("text") or "")),
        float(len(item.get("hashtags") or [])),
        float(len(item.get("links") or [])),
        math.log1p(ctx.followers) if ctx.followers is not None else NAN,
        float(ctx.is_friend) if ctx.is_friend is not None else NAN,
    ]


def page_matrix(items: Sequence[Mapping[str, Any]], now_ms: int,
                contexts: Mapping[str, AuthorContext] | None = None) -> np.ndarray:
    """A ``(len(items), len(FEATURE_NAMES))`` float64 matrix for one page (one predict call)."""
    ctxs = contexts or {}
    rows = [item_features(it, now_ms, ctxs.get(str(it.get("author_id")))) for it in items]
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
