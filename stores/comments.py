"""Comment bodies, threaded per post (Cassandra), written by the users topology from engagements.v1.

``comments_by_post`` holds one partition per post, clustered by ``(thread, comment_id)``: roots
have ``thread = 0``, every reply carries the id of its thread's root, so a page of roots and the
replies of exactly those roots are two single-partition reads. ``comment_threads`` maps a comment
to its thread (to place replies to replies, and to find a comment on delete).

Redis: ``commentowner:{id}`` HASH user/post/deleted, the API's ownership index of comments.
"""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Session

from core.rows import TOP_LEVEL, CommentWrite
from stores.cassandra import prepared

DDL: list[str] = [
    ("CREATE TABLE IF NOT EXISTS {ks}.comments_by_post (post_id bigint, thread bigint, comment_id bigint, "
     "parent_id bigint, user_id text, text text, deleted boolean, created_at bigint, "
     "PRIMARY KEY ((post_id), thread, comment_id))"),
    ("CREATE TABLE IF NOT EXISTS {ks}.comment_threads (comment_id bigint PRIMARY KEY, post_id bigint, "
     "thread bigint)"),
]
COLS = "post_id, thread, comment_id, parent_id, user_id, text, deleted, created_at"
SELECT_THREAD = "SELECT post_id, thread FROM comment_threads WHERE comment_id=?"
SELECT_OWNER = "SELECT user_id, deleted FROM comments_by_post WHERE post_id=? AND thread=? AND comment_id=?"


def k_owner(comment_id: int) -> str:
    """Redis key of a comment's author, post and deleted flag as recorded by the API (ownership index)."""
    return f"commentowner:{comment_id}"


def thread_statement(session: Session) -> Any:
    """The prepared ``(post_id, thread)`` lookup of one comment (bind ``(comment_id,)``)."""
    return prepared(session, SELECT_THREAD)


def owner_statement(session: Session) -> Any:
    """The prepared ``(user_id, deleted)`` lookup of one comment (bind ``(post_id, thread, comment_id)``)."""
    return prepared(session, SELECT_OWNER)


class CommentStore:
    """Prepared statements for writing and paging comments."""

    def __init__(self, session: Session) -> None:
        s = self.session = session
        self.q_thread = s.prepare("SELECT post_id, thread FROM comment_threads WHERE comment_id=?")
        self.i_thread = s.prepare("INSERT INTO comment_threads (comment_id, post_id, thread) VALUES (?, ?, ?)")
        self.i_comment = s.prepare(
            "INSERT INTO comments_by_post (post_id, thread, comment_id, parent_id, user_id, text, deleted, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, false, ?) USING TIMESTAMP ?")
        self.u_delete = s.prepare(
            "UPDATE comments_by_post USING TIMESTAMP ? SET deleted=true, text=null "
            "WHERE post_id=? AND thread=? AND comment_id=?")
        self.q_page = s.prepare(f"SELECT {COLS} FROM comments_by_post WHERE post_id=? AND thread=? "
                                "AND comment_id > ? LIMIT ?")
        self.q_replies = s.prepare(f"SELECT {COLS} FROM comments_by_post WHERE post_id=? AND thread IN ? "
                                   "LIMIT ?")

    def thread_of(self, comment_id: int | None) -> int | None:
        """The stored thread of a comment (None if unknown)."""
        if not comment_id:
            return None
        row = self.session.execute(self.q_thread, (comment_id,)).one()
        return None if row is None else int(row.thread)

    def apply(self, w: CommentWrite) -> None:
        """Write a comment or its tombstone (idempotent; the later event time wins)."""
        ts = w.at_ms * 1000
        if w.deleted:
            self.session.execute(self.u_delete, (ts + 1, w.post_id, w.thread, w.comment_id))
            return
        self.session.execute(self.i_thread, (w.comment_id, w.post_id, w.thread))
        self.session.execute(self.i_comment, (w.post_id, w.thread, w.comment_id, w.parent_id, w.user_id,
                                              w.text, w.at_ms, ts))

    def page(self, post_id: int, thread: int, after: int, limit: int) -> list[dict[str, Any]]:
        """Comments of one thread (``0`` = roots) with ids above ``after``, oldest first."""
        return [r._asdict() for r in self.session.execute(self.q_page, (post_id, thread, after, limit))]

    def replies(self, post_id: int, roots: list[int], cap: int) -> list[dict[str, Any]]:
        """Replies under the given roots (one single-partition read, at most ``cap`` rows)."""
        roots = [r for r in roots if r != TOP_LEVEL]
        if not roots:
            return []
        return [r._asdict() for r in self.session.execute(self.q_replies, (post_id, roots, cap))]
