"""User reads: a profile with follow counts, followers/following pages, a user's own posts."""

from __future__ import annotations

from typing import Any

from serving.readers.base import NotFound
from serving.readers.bundle import Readers
from stores.users import display

PROFILE_FIELDS = ("handle", "display_name", "bio", "avatar_url", "created_at")


def known(rd: Readers, user_id: str) -> dict[str, Any]:
    """``user_id``'s profile; NotFound if the user is unknown."""
    prof = rd.profiles.profile(user_id)
    if prof is None:
        raise NotFound(f"no user {user_id}")
    return prof


def exists(rd: Readers, user_id: str) -> bool:
    """Whether the profile view knows ``user_id`` (Redis cache, Cassandra on a miss); Unavailable if unknown."""
    return rd.profiles.profile(user_id) is not None


def profile_view(rd: Readers, user_id: str) -> dict[str, Any]:
    """Profile fields plus follower/following/friend counts (Redis, else Cassandra)."""
    prof = known(rd, user_id)
    return {"user_id": user_id, **{k: prof.get(k) for k in PROFILE_FIELDS}, "counts": rd.graph.counts(user_id)}


def edges_view(rd: Readers, table: str, user_id: str, after: str, limit: int) -> tuple[list[dict], str | None]:
    """A page of ``user_id``'s followers or following (sorted by id) with display info."""
    known(rd, user_id)
    ids = rd.graph.edges(table, user_id, after, limit + 1)
    page = ids[:limit]
    people = rd.profiles.profiles(page)
    return [display(people.get(u), u) for u in page], (page[-1] if len(ids) > limit else None)


def user_posts_view(rd: Readers, viewer: str, author: str, before: int | None, limit: int) -> dict[str, Any]:
    """A page of ``author``'s posts that ``viewer`` may see, newest first; Forbidden if blocked."""
    known(rd, author)
    may_see = rd.visibility.author_rule(viewer, author)
    want = limit + 1
    rows = rd.posts.by_author(author, before, want)
    ids = [pid for pid, vis in rows if may_see(vis)]
    posts = rd.posts.load(ids).value.value
    live = rd.visibility.without_moderated(viewer, rd.visibility.filter_live([posts[i] for i in ids if i in posts]))
    live = live[:limit]
    items = rd.items.items(live, viewer=viewer)
    nxt = int(live[-1]["post_id"]) if len(rows) == want and live else (rows[-1][0] if len(rows) == want else None)
    return {"items": items.value, "next_before": nxt, "hydration_partial": not items.complete}
