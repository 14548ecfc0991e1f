"""Row types of the views, shared by the topologies that write them and the stores and readers.

- engagement state: :class:`Counts`, :class:`Member` and :class:`PostState` (exact counters);
- profiles and comments: :class:`ProfileWrite`, :class:`CommentWrite` and the thread shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TOP_LEVEL = 0  # the ``thread`` of a top-level comment


@dataclass(frozen=True)
class Counts:
    """Likes, comments, shares and reactions per kind (absolute totals or a delta)."""

    likes: int = 0
    comments: int = 0
    shares: int = 0
    reactions: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Counts) -> Counts:
        reactions = dict(self.reactions)
        for kind, n in other.reactions.items():
            reactions[kind] = reactions.get(kind, 0) + n
        return Counts(self.likes + other.likes, self.comments + other.comments,
                      self.shares + other.shares, {k: v for k, v in reactions.items() if v})

    def is_zero(self) -> bool:
        """True when every count is zero."""
        return not (self.likes or self.comments or self.shares or any(self.reactions.values()))

    def as_dict(self) -> dict[str, Any]:
        """Plain dict in the EngagementCount field layout."""
        return {"likes": self.likes, "comments": self.comments, "shares": self.shares,
                "reactions": {k: v for k, v in sorted(self.reactions.items()) if v}}


@dataclass(frozen=True)
class Member:
    """One dedup key's state: present or not, the version that decided it, its user."""

    present: bool
    ts: int
    event_id: str
    user: str = ""
    tomb: bool = False  # comments only: deleted for good

    @property
    def version(self) -> tuple[int, str]:
        """Ordering key for last-writer-wins."""
        return (self.ts, self.event_id)


@dataclass
class PostState:
    """A post's members and totals (``rev`` counts applied changes; used as an optimistic lock)."""

    post_id: int
    members: dict[str, Member] = field(default_factory=dict)
    totals: Counts = field(default_factory=Counts)
    rev: int = 0


@dataclass(frozen=True)
class ProfileWrite:
    """Columns to set on a user row, written with the event time as the write timestamp."""

    user_id: str
    fields: dict[str, str | None]
    at_ms: int
    registered: bool


@dataclass(frozen=True)
class CommentWrite:
    """A comment row: ``thread`` is 0 for a top-level comment, else the id of its thread's root."""

    post_id: int
    thread: int
    comment_id: int
    parent_id: int | None
    user_id: str
    text: str | None
    deleted: bool
    at_ms: int


def nest(roots: list[dict[str, Any]], replies: list[dict[str, Any]], per_thread: int) -> list[dict[str, Any]]:
    """Attach up to ``per_thread`` replies (oldest first) under each root, flagging more."""
    by_thread: dict[int, list[dict[str, Any]]] = {}
    for r in sorted(replies, key=lambda c: c["comment_id"]):
        by_thread.setdefault(r["thread"], []).append(r)
    out = []
    for root in roots:
        rs = by_thread.get(root["comment_id"], [])
        out.append({**root, "replies": rs[:per_thread], "more_replies": len(rs) > per_thread})
    return out
