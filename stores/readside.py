"""Cassandra-only reads for the read API (degraded mode without Redis, and paged graph lists).

These complement :mod:`stores.timelines` and :mod:`stores.graph` (whose reads go through Redis):
every function here touches Cassandra only, in O(page) queries run concurrently. Post content
and the author index are read through :mod:`stores.posts` (``stored_posts``, ``author_index_async``).
"""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Session

from core.feed import merge_newest, visible_to
from stores import posts as post_store
from stores.cassandra import prepared

EDGE_COLUMN = {"followers": "follower_id", "following": "followee_id", "friends": "friend_id",
               "blocks": "blocked_id"}


def _all(futures: list[Any]) -> list[list[Any]]:
    return [list(f.result()) for f in futures]


def edge_page(session: Session, table: str, user: str, after: str, limit: int) -> list[str]:
    """``user``'s followers/following/friends/blocks with ids above ``after`` (sorted), up to ``limit``."""
    col = EDGE_COLUMN[table]
    stmt = prepared(session, f"SELECT {col} FROM {table} WHERE user_id=? AND {col} > ? LIMIT ?")
    return [getattr(r, col) for r in session.execute(stmt, (user, after, limit))]


def edge_exists(session: Session, table: str, user: str, other: str) -> bool:
    """Whether ``other`` is in ``user``'s ``table`` (e.g. ``following``)."""
    col = EDGE_COLUMN[table]
    stmt = prepared(session, f"SELECT {col} FROM {table} WHERE user_id=? AND {col}=?")
    return session.execute(stmt, (user, other)).one() is not None


def counts(session: Session, user: str) -> dict[str, int] | None:
    """Durable follower/following/friend counts (None if never written)."""
    row = session.execute(prepared(session, "SELECT followers, following, friends FROM user_counts "
                                              "WHERE user_id=?"), (user,)).one()
    return None if row is None else {k: int(getattr(row, k) or 0) for k in ("followers", "following", "friends")}


def home_candidates(session: Session, reader: str, before: int | None, limit: int,
                    max_followees: int = 1000) -> list[int]:
    """A home page's candidate ids straight from the author index of ``reader``'s followees and of
    ``reader`` (an author sees their own posts in their home feed)."""
    followees = edge_page(session, "following", reader, "", max_followees)
    friends = set(edge_page(session, "friends", reader, "", max_followees))
    followees = [a for a in followees if a != reader]
    futures = [post_store.author_index_async(session, a, before, limit) for a in followees]
    own = post_store.author_index_async(session, reader, before, limit)  # own posts, as fan-out pushes
    lists = [[r.post_id for r in rows if visible_to(r.visibility, is_author=False, follows=True,
                                                    is_friend=a in friends)]
             for a, rows in zip(followees, _all(futures))]
    lists.append([r.post_id for r in own.result()])
    return merge_newest(*lists, before=before, limit=limit)


def engagement_totals(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Durable engagement totals of each post (zeros if none), queried concurrently."""
    stmt = prepared(session, "SELECT likes, comments, shares, reactions FROM engagement_state "
                              "WHERE post_id=? LIMIT 1")
    out = {}
    for pid, rows in zip(ids, _all([session.execute_async(stmt, (p,)) for p in ids])):
        r = rows[0] if rows else None
        out[pid] = {"likes": int(getattr(r, "likes", 0) or 0), "comments": int(getattr(r, "comments", 0) or 0),
                    "shares": int(getattr(r, "shares", 0) or 0),
                    "reactions": {k: int(v) for k, v in (getattr(r, "reactions", None) or {}).items() if v}}
    return out
