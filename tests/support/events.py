"""Post and graph events for topology tests (``core.events.post_created`` builds PostCreated)."""

from __future__ import annotations

from typing import Any

from core.events import new_event


def post_edited(author: str, post_id: int, text: str, visibility: str = "PUBLIC") -> tuple[str, dict[str, Any]]:
    """A PostEdited event."""
    return "PostEdited", new_event(author, post_id=post_id, author_id=author, text=text, media=[],
                                   links=[], hashtags=[], mentions=[], visibility=visibility)


def post_deleted(author: str, post_id: int) -> tuple[str, dict[str, Any]]:
    """A PostDeleted event."""
    return "PostDeleted", new_event(author, post_id=post_id, author_id=author)


def edge(record: str, a: str, b: str) -> tuple[str, dict[str, Any]]:
    """A graph event: Followed/Unfollowed (a follows b), FriendRequest*(a -> b), Blocked/Unblocked (a blocks b),
    Unfriended (a unfriends b)."""
    fields = {"Followed": ("follower_id", "followee_id"), "Unfollowed": ("follower_id", "followee_id"),
              "Blocked": ("blocker_id", "blocked_id"), "Unblocked": ("blocker_id", "blocked_id"),
              "Unfriended": ("user_id", "friend_id")}
    fa, fb = fields.get(record, ("from_id", "to_id"))
    return record, new_event(a, **{fa: a, fb: b})
