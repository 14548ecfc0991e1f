"""Pure fan-out logic: audiences, hybrid push/pull policy, timeline writes and read-time merge."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.clock import DAY_MS
from core.feed import ADD, EDIT, REMOVE, Policy, TimelineWrite, visible_to
from streams.errors import PoisonRecord


@dataclass(frozen=True)
class PostRef:
    """The fields of a post fan-out needs."""

    post_id: int
    author_id: str
    visibility: str = "PUBLIC"


class UnknownPost(PoisonRecord):
    """A PostEdited or PostDeleted of a post that was never created (or an edit of a deleted one)."""


class UnknownAuthor(PoisonRecord):
    """A PostCreated whose author never registered (on users.v1) within the grace."""


class NotPostAuthor(PoisonRecord):
    """A PostEdited or PostDeleted whose author_id is not the post's author."""


def check_post_refs(events: Iterable[tuple[str, Mapping[str, object]]],
                    stored: Mapping[int, tuple[str, bool]]) -> list[PoisonRecord | None]:
    """Per posts.v1 event in order, the reason to refuse it (None: apply it).

    ``stored`` maps the post ids the events name to ``(author_id, deleted)`` as the post store has
    them. PostCreated needs nothing. PostEdited needs the post created (stored, or earlier in the
    events: create and edit of one post share the author key, hence one partition, in order), by the
    same author, and not deleted. PostDeleted needs the post created, by the same author; deleting
    a deleted post again is applied (a no-op), so a redelivered delete is not a dead letter.
    """
    state = dict(stored)
    out: list[PoisonRecord | None] = []
    for name, v in events:
        pid, author = int(v["post_id"]), str(v["author_id"])  # type: ignore[call-overload]
        known = state.get(pid)
        if name == "PostCreated":
            state[pid] = (author, False) if known is None else known
            out.append(None)
            continue
        if known is None:
            out.append(UnknownPost(f"{name}: no post {pid} (by {author}) was ever created"))
        elif known[0] != author:
            out.append(NotPostAuthor(f"{name}: post {pid} is by {known[0]}, not {author}"))
        elif name == "PostEdited" and known[1]:
            out.append(UnknownPost(f"PostEdited: post {pid} was deleted"))
        else:
            if name == "PostDeleted":
                state[pid] = (author, True)
            out.append(None)
    return out


def superseded(events: Iterable[tuple[int, int]], applied: Mapping[int, int]) -> list[bool]:
    """Per ``(post_id, version)`` in log order: is a newer event of that post applied already?

    ``applied`` is each post's version before the batch (``stores.posts.applied_versions``); the
    batch's own events raise it as they go. A re-delivered PostCreated or PostEdited older than an
    applied edit or delete must not fan out again: it would re-add the post to readers the edit
    narrowed it away from. An equal version is the same event again, harmless, so it is not skipped.
    """
    newest = dict(applied)
    out = []
    for post_id, version in events:
        out.append(version < newest.get(post_id, 0))
        newest[post_id] = max(version, newest.get(post_id, 0))
    return out


@dataclass
class FanoutPlan:
    """What to do for one post event: writes to push, readers skipped as inactive, celebrity flag."""

    writes: list[TimelineWrite] = field(default_factory=list)
    inactive: list[str] = field(default_factory=list)
    celebrity: bool = False


def audience(visibility: str, followers: Iterable[str], friends: Iterable[str]) -> set[str]:
    """The followers who may see a post of ``visibility`` in their home timeline."""
    fol = set(followers)
    if visibility == "FRIENDS":
        return fol & set(friends)
    return fol


def is_inactive(last_seen_ms: float | None, now_ms: int, inactive_days: float) -> bool:
    """A reader is inactive when last seen more than ``inactive_days`` ago (never seen = active)."""
    return last_seen_ms is not None and now_ms - last_seen_ms > inactive_days * DAY_MS


def plan_post(post: PostRef, op: str, followers: Iterable[str], friends: Iterable[str],
              last_seen: Mapping[str, float | None], now_ms: int, policy: Policy) -> FanoutPlan:
    """Plan a PostCreated (ADD) or PostEdited (EDIT) fan-out; edits narrowing visibility REMOVE.

    The author is a reader of their own posts: one write to the author's own timeline, first, for
    every post (celebrities included, whose followers merge it at read time instead).
    """
    fol = set(followers) - {post.author_id}
    plan = FanoutPlan(celebrity=len(fol) > policy.celebrity_threshold)
    plan.writes.append(TimelineWrite(post.author_id, post.post_id, post.author_id, op))
    if plan.celebrity:
        return plan
    allowed = audience(post.visibility, fol, friends)
    targets: list[tuple[str, str]] = [(r, op) for r in sorted(allowed)]
    if op == EDIT:
        targets += [(r, REMOVE) for r in sorted(fol - allowed)]
    for reader, reader_op in targets:
        if is_inactive(last_seen.get(reader), now_ms, policy.inactive_days):
            plan.inactive.append(reader)
        else:
            plan.writes.append(TimelineWrite(reader, post.post_id, post.author_id, reader_op))
    return plan


def plan_delete(post_id: int, author_id: str, followers: Iterable[str]) -> list[TimelineWrite]:
    """REMOVE a deleted post from the author's and every follower's timeline (the read path hides it
    already)."""
    return [TimelineWrite(r, post_id, author_id, REMOVE) for r in [author_id, *sorted(set(followers) - {author_id})]]


def plan_backfill(reader: str, author: str, recent: Iterable[tuple[int, str]], *, follows: bool,
                  is_friend: bool, limit: int) -> list[TimelineWrite]:
    """ADD up to ``limit`` of ``author``'s newest visible posts (post_id, visibility) for a new follow."""
    ok = [pid for pid, vis in recent
          if visible_to(vis, is_author=reader == author, follows=follows, is_friend=is_friend)]
    return [TimelineWrite(reader, pid, author, ADD) for pid in sorted(ok, reverse=True)[:limit]]


def plan_purge(reader: str, author: str, post_ids: Iterable[int]) -> list[TimelineWrite]:
    """REMOVE an unfollowed or blocked author's posts from ``reader``'s timeline."""
    return [TimelineWrite(reader, pid, author, REMOVE) for pid in sorted(set(post_ids), reverse=True)]


