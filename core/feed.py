"""The feed's domain rules: who may see a post, how timelines change, and how id lists merge.

Shared by the fan-out and graph topologies (which write timelines) and by the read path (which
filters and merges candidates), so both apply the same rules.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

ADD, REMOVE, EDIT = "ADD", "REMOVE", "EDIT"
VISIBILITIES = ("PUBLIC", "FOLLOWERS", "FRIENDS")


@dataclass(frozen=True)
class Policy:
    """Hybrid fan-out knobs; built from the settings (``Settings.policy``), so defaults live there."""

    celebrity_threshold: int
    inactive_days: float
    timeline_cap: int
    backfill_limit: int


@dataclass(frozen=True)
class TimelineWrite:
    """One change to one reader's timeline: ``op`` is ADD, REMOVE or EDIT."""

    reader_id: str
    post_id: int
    author_id: str
    op: str


def visible_to(visibility: str, *, is_author: bool, follows: bool, is_friend: bool) -> bool:
    """Whether a reader may see a post of this visibility (blocks are checked separately)."""
    if is_author or visibility == "PUBLIC":
        return True
    if visibility == "FOLLOWERS":
        return follows
    if visibility == "FRIENDS":
        return is_friend
    return False


def visible(visibility: str, *, is_author: bool, blocked: bool, deleted: bool, follows: bool,
            is_friend: bool) -> bool:
    """The whole rule for one reader and one post: deleted and blocked first, then visibility."""
    if deleted:
        return False
    if is_author:
        return True
    if blocked:
        return False
    return visible_to(visibility, is_author=False, follows=follows, is_friend=is_friend)


def merge_newest(*sources: Iterable[int], before: int | None, limit: int) -> list[int]:
    """Merge newest-first id lists into one newest-first page of distinct ids below ``before``."""
    out: list[int] = []
    last: int | None = None
    for pid in heapq.merge(*sources, reverse=True):
        if before is not None and pid >= before:
            continue
        if pid == last:
            continue
        out.append(pid)
        last = pid
        if len(out) >= limit:
            break
    return out
