"""Pure per-event logic of the users topology: profile writes and comment thread placement."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.clock import millis
from core.rows import TOP_LEVEL, CommentWrite, ProfileWrite

PROFILE_FIELDS = ("handle", "display_name", "bio", "avatar_url")
USER_RECORDS = ("UserRegistered", "ProfileUpdated")
COMMENT_RECORDS = ("CommentAdded", "CommentDeleted")


def profile_write(name: str, v: Mapping[str, Any]) -> ProfileWrite:
    """The profile change an event makes: registration sets every field, an update only given ones."""
    if name == "UserRegistered":
        fields = {k: v.get(k) for k in PROFILE_FIELDS}
    elif name == "ProfileUpdated":
        fields = {k: v[k] for k in PROFILE_FIELDS if k != "handle" and v.get(k) is not None}
    else:
        raise ValueError(f"not a user record: {name}")
    return ProfileWrite(v["user_id"], fields, millis(v["occurred_at"]), name == "UserRegistered")


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


