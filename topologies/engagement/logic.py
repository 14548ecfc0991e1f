"""Pure engagement logic: exact, deduplicated per-post counters, windows, affinity and notifications.

State is a set of *members* per post, one per dedup key:

- ``l:{user}``        a like (Liked / Unliked), last-writer-wins by ``(occurred_at, event_id)``;
- ``r:{kind}:{user}`` a reaction of one kind (ReactionAdded / ReactionRemoved), last-writer-wins;
- ``s:{user}``        a share (Shared): a user's shares of a post count once, and cannot be undone;
- ``c:{comment_id}``  a comment: counted once it is added, uncounted for good once deleted
                      (a delete that arrives before its add is remembered as a tombstone).

Counters are the number of present members of each type, so a replayed or repeated event is a
no-op and the counters equal :func:`recount` of the log in any order. Each applied event yields a
delta (for per-minute windows) and, when it is the winning event of a present member, the
notifications it causes (deterministic ids, so re-emits after a replay deduplicate).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.clock import millis
from core.rows import Counts, Member, PostState

WINDOW_MS = 60_000
KINDS = ("Liked", "Unliked", "CommentAdded", "CommentDeleted", "Shared", "ReactionAdded",
         "ReactionRemoved")
ADDS = {"Liked", "CommentAdded", "Shared", "ReactionAdded"}
NOTIFY_NS = uuid.UUID("6f1d3f0e-5b1c-4c55-9f57-0d3c2a9e7a11")


@dataclass(frozen=True)
class Notify:
    """A notification to emit (the Notification event minus its envelope)."""

    notification_id: str
    recipient_id: str
    actor_id: str
    kind: str
    occurred_at: int
    post_id: int | None = None
    comment_id: int | None = None


@dataclass(frozen=True)
class Outcome:
    """What applying one event did: the member after it, the count delta, the window, notifications."""

    key: str
    member: Member | None
    delta: Counts
    window_start: int
    changed: bool
    notifications: tuple[Notify, ...] = ()


def member_key(name: str, ev: Mapping[str, Any]) -> str:
    """The dedup key of an engagement event within its post."""
    if name in ("Liked", "Unliked"):
        return f"l:{ev['user_id']}"
    if name in ("ReactionAdded", "ReactionRemoved"):
        return f"r:{ev['kind']}:{ev['user_id']}"
    if name == "Shared":
        return f"s:{ev['user_id']}"
    if name in ("CommentAdded", "CommentDeleted"):
        return f"c:{ev['comment_id']}"
    raise ValueError(f"{name!r} is not an engagement event")


def unit(key: str) -> Counts:
    """The +1 count a present member of ``key`` contributes."""
    kind = key.split(":", 1)[0]
    if kind == "l":
        return Counts(likes=1)
    if kind == "c":
        return Counts(comments=1)
    if kind == "s":
        return Counts(shares=1)
    return Counts(reactions={key.split(":")[1]: 1})


def _neg(c: Counts) -> Counts:
    return Counts(-c.likes, -c.comments, -c.shares, {k: -v for k, v in c.reactions.items()})


def window_of(ts: int, size_ms: int = WINDOW_MS) -> int:
    """Start of the tumbling window that ``ts`` falls in."""
    return ts - ts % size_ms


def transition(name: str, ev: Mapping[str, Any], old: Member | None) -> Member | None:
    """The member state after ``ev``; ``old`` itself (unchanged) if ``ev`` loses or repeats."""
    ts, eid, user = millis(ev["occurred_at"]), str(ev["event_id"]), str(ev["user_id"])
    if name in ("CommentAdded", "CommentDeleted"):
        if old is not None and (old.tomb or (name == "CommentAdded" and old.present)):
            return old  # deleted for good, or already counted
        if name == "CommentDeleted":
            return Member(False, ts, eid, old.user if old else "", tomb=True)
        return Member(True, ts, eid, user)
    if name == "Shared":
        if old is not None and old.version <= (ts, eid):
            return old  # the earliest share decides; later shares are repeats
        return Member(True, ts, eid, user)
    if old is not None and old.version >= (ts, eid):
        return old  # older or replayed: last writer already won
    return Member(name in ADDS, ts, eid, user)


def notification_id(kind: str, event_id: str, recipient: str) -> str:
    """Deterministic notification id, so a re-emit of the same cause deduplicates."""
    return str(uuid.uuid5(NOTIFY_NS, f"{kind}:{event_id}:{recipient}"))


def engagement_notifications(name: str, ev: Mapping[str, Any],
                             parent_author: str | None = None) -> tuple[Notify, ...]:
    """Notifications caused by an engagement that is (still) in effect."""
    kind = {"Liked": "LIKE", "CommentAdded": "COMMENT", "Shared": "SHARE",
            "ReactionAdded": "REACTION"}.get(name)
    if kind is None:
        return ()
    actor, author, eid = str(ev["user_id"]), str(ev["post_author_id"]), str(ev["event_id"])
    ts, post = millis(ev["occurred_at"]), int(ev["post_id"])
    comment = ev.get("comment_id") if name == "CommentAdded" else None
    out: list[Notify] = []
    if parent_author and parent_author != actor:
        out.append(Notify(notification_id("REPLY", eid, parent_author), parent_author, actor,
                          "REPLY", ts, post, comment))
    if author != actor and author != parent_author:
        out.append(Notify(notification_id(kind, eid, author), author, actor, kind, ts, post, comment))
    return tuple(out)


def graph_notification(name: str, ev: Mapping[str, Any]) -> Notify | None:
    """The notification a graph.v1 event causes (follows and friend requests), if any."""
    ts, eid = millis(ev["occurred_at"]), str(ev["event_id"])
    if name == "Followed":
        actor, recipient, kind = ev["follower_id"], ev["followee_id"], "FOLLOW"
    elif name == "FriendRequestSent":
        actor, recipient, kind = ev["from_id"], ev["to_id"], "FRIEND_REQUEST"
    elif name == "FriendRequestAccepted":  # the requester (from) learns that `to` accepted
        actor, recipient, kind = ev["to_id"], ev["from_id"], "FRIEND_ACCEPTED"
    else:
        return None
    if actor == recipient:
        return None
    return Notify(notification_id(kind, eid, str(recipient)), str(recipient), str(actor), kind, ts)


def apply(state: PostState, name: str, ev: Mapping[str, Any]) -> Outcome:
    """Apply one engagement event to ``state`` in place and return what it did."""
    key = member_key(name, ev)
    old = state.members.get(key)
    new = transition(name, ev, old)
    ts = millis(ev["occurred_at"])
    changed = new is not old
    delta = Counts()
    if changed and new is not None:
        was, now = bool(old and old.present), new.present
        if was != now:
            delta = unit(key) if now else _neg(unit(key))
        state.members[key] = new
        state.totals = state.totals + delta
        state.rev += 1
    notes: tuple[Notify, ...] = ()
    if new is not None and new.present and new.event_id == str(ev["event_id"]):
        parent = ev.get("parent_comment_id") if name == "CommentAdded" else None
        parent_member = state.members.get(f"c:{parent}") if parent is not None else None
        notes = engagement_notifications(name, ev, parent_member.user if parent_member else None)
    return Outcome(key, new, delta, window_of(ts), changed, notes)


def recount(log: Iterable[tuple[str, Mapping[str, Any]]]) -> Counts:
    """Totals recomputed from a whole log, independently of arrival order (the reference semantics).

    Likes and reactions: the latest event by ``(occurred_at, event_id)`` per (user[, kind]) decides.
    Shares: any share by a user counts once. Comments: added and never deleted.
    """
    latest: dict[str, tuple[tuple[int, str], bool]] = {}
    shares: set[str] = set()
    added: set[int] = set()
    deleted: set[int] = set()
    for name, ev in log:
        if name == "Shared":
            shares.add(str(ev["user_id"]))
        elif name == "CommentAdded":
            added.add(int(ev["comment_id"]))
        elif name == "CommentDeleted":
            deleted.add(int(ev["comment_id"]))
        else:
            key = member_key(name, ev)
            ver = (millis(ev["occurred_at"]), str(ev["event_id"]))
            if key not in latest or ver > latest[key][0]:
                latest[key] = (ver, name in ADDS)
    total = Counts(shares=len(shares), comments=len(added - deleted))
    for key, (_, present) in latest.items():
        if present:
            total = total + unit(key)
    return total
