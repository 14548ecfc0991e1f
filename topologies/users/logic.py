"""Pure per-event logic of the users topology: profile writes and comment thread placement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

PROFILE_FIELDS = ("handle", "display_name", "bio", "avatar_url")
USER_RECORDS = ("UserRegistered", "ProfileUpdated")
COMMENT_RECORDS = ("CommentAdded", "CommentDeleted")
TOP_LEVEL = 0


def millis(at: Any) -> int:
    """Epoch ms of an Avro timestamp-millis value (datetime or int)."""
    return int(at.timestamp() * 1000) if isinstance(at, datetime) else int(at)


@dataclass(frozen=True)
class ProfileWrite:
    """Columns to set on a user row, written with the event time as the write timestamp."""

    user_id: str
    fields: dict[str, str | None]
    at_ms: int
    registered: bool


def profile_write(name: str, v: Mapping[str, Any]) -> ProfileWrite:
    """The profile change an event makes: registration sets every field, an update only given ones."""
    if name == "UserRegistered":
        fields = {k: v.get(k) for k in PROFILE_FIELDS}
    elif name == "ProfileUpdated":
        fields = {k: v[k] for k in PROFILE_FIELDS if k != "handle" and v.get(k) is not None}
    else:
        raise ValueError(f"not a user record: {name}")
    return ProfileWrite(v["user_id"], fields, millis(v["occurred_at"]), name == "UserRegistered")


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


def thread_of(parent_id: int | None, parent_thread: int | None) -> int:
    """The thread a comment belongs to, from its parent (and the parent's own thread)."""
    if not parent_id:
        return TOP_LEVEL
    if parent_thread is None or parent_thread == TOP_LEVEL:
        return parent_id  # a reply to a root (or to an unknown parent: attach under it)
    return parent_thread


def comment_write(name: str, v: Mapping[str, Any], parent_thread: int | None,
                  own_thread: int | None = None) -> CommentWrite:
    """The row a CommentAdded writes, or the tombstone a CommentDeleted writes (text dropped)."""
    at = millis(v["occurred_at"])
    if name == "CommentAdded":
        parent = v.get("parent_comment_id")
        return CommentWrite(v["post_id"], thread_of(parent, parent_thread), v["comment_id"], parent,
                            v["user_id"], v["text"], False, at)
    if name == "CommentDeleted":
        return CommentWrite(v["post_id"], own_thread if own_thread is not None else TOP_LEVEL,
                            v["comment_id"], None, v["user_id"], None, True, at)
    raise ValueError(f"not a comment record: {name}")


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
