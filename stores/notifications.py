"""Per-user notification feed in Cassandra, with an unread count, mark-read, and realtime push.

``notifications_by_user`` is one partition per recipient, newest first; a notification's row key
is ``(created_at, notification_id)`` where ``created_at`` is the causing event's time, so a
replayed notification overwrites itself. Reading state is a per-user watermark ``read_until``
(written with ``USING TIMESTAMP`` = the watermark, so the highest mark always wins): everything
created after it is unread. Realtime push is a JSON message ``{"type": "notification", ...}`` on
the Redis pub/sub channel ``feed:{user}``.

Known limit (late notifications): a notification is ordered by its cause's time, so one that
arrives after the user marked a *later* time read (worker lag or a replay) is born read: it is
listed, pushed in realtime, but not counted unread. Fixing it means ordering by arrival, which
needs a per-notification first-seen record (an LWT per notification) to stay idempotent under
replay; not done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from core.clock import now_ms
from stores import timelines

DDL = [
    """CREATE TABLE IF NOT EXISTS {ks}.notifications_by_user (
        recipient_id text, created_at bigint, notification_id text,
        kind text, actor_id text, post_id bigint, comment_id bigint,
        PRIMARY KEY (recipient_id, created_at, notification_id))
        WITH CLUSTERING ORDER BY (created_at DESC, notification_id ASC)""",
    """CREATE TABLE IF NOT EXISTS {ks}.notification_reads (
        recipient_id text PRIMARY KEY, read_until bigint)""",
]
UNREAD_CAP = 100


def channel(user_id: str) -> str:
    """The Redis pub/sub channel shared with the feed's realtime push (:func:`stores.timelines.channel`)."""
    return timelines.channel(user_id)


def push_message(n: Mapping[str, Any]) -> bytes:
    """The JSON message pushed to ``feed:{recipient}`` for a notification."""
    return orjson.dumps({"type": "notification", **{k: n[k] for k in (
        "notification_id", "recipient_id", "kind", "actor_id", "post_id", "comment_id",
        "created_at") if k in n}})


class NotificationStore:
    """Prepared statements for recording, listing and marking notifications read."""

    def __init__(self, session: Session) -> None:
        s = self.session = session
        self.i_note = s.prepare(
            "INSERT INTO notifications_by_user (recipient_id, created_at, notification_id, kind, "
            "actor_id, post_id, comment_id) VALUES (?, ?, ?, ?, ?, ?, ?)")
        self.q_list = s.prepare(
            "SELECT created_at, notification_id, kind, actor_id, post_id, comment_id "
            "FROM notifications_by_user WHERE recipient_id=? AND created_at < ? LIMIT ?")
        self.q_newest = s.prepare(
            "SELECT created_at FROM notifications_by_user WHERE recipient_id=? LIMIT 1")
        self.q_unread = s.prepare(
            "SELECT notification_id FROM notifications_by_user WHERE recipient_id=? AND created_at > ? "
            "LIMIT ?")
        self.q_mark = s.prepare("SELECT read_until FROM notification_reads WHERE recipient_id=?")
        self.u_mark = s.prepare(
            "UPDATE notification_reads USING TIMESTAMP ? SET read_until=? WHERE recipient_id=?")

    def record_statement(self, n: Mapping[str, Any]) -> Any:
        """The bound idempotent insert of a Notification value (``occurred_at`` as ``created_at``)."""
        return self.i_note.bind((n["recipient_id"], int(n["created_at"]), n["notification_id"],
                                 n["kind"], n["actor_id"], n.get("post_id"), n.get("comment_id")))

    def record_batch(self, notes: Sequence[Mapping[str, Any]]) -> Any:
        """One unlogged batch of :meth:`record_statement` inserts (one recipient: one partition)."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for n in notes:
            batch.add(self.i_note, (n["recipient_id"], int(n["created_at"]), n["notification_id"],
                                    n["kind"], n["actor_id"], n.get("post_id"), n.get("comment_id")))
        return batch

    def read_until(self, user_id: str) -> int:
        """The user's read watermark (0 if never marked)."""
        row = self.session.execute(self.q_mark, (user_id,)).one()
        return int(row.read_until) if row and row.read_until is not None else 0

    def list(self, user_id: str, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
        """Newest-first notifications (created before ``before``), each with a ``read`` flag."""
        mark = self.read_until(user_id)
        rows = self.session.execute(self.q_list, (user_id, before if before is not None else 2**62,
                                                  max(1, min(limit, 500))))
        return [{**r._asdict(), "recipient_id": user_id, "read": r.created_at <= mark} for r in rows]

    def unread_count(self, user_id: str, cap: int = UNREAD_CAP) -> int:
        """Notifications created after the read watermark, counted up to ``cap``."""
        rows = self.session.execute(self.q_unread, (user_id, self.read_until(user_id), cap))
        return sum(1 for _ in rows)

    def mark_read(self, user_id: str, up_to: int | None = None) -> int:
        """Mark everything created at or before ``up_to`` (default: the newest) read; returns the mark."""
        if up_to is None:
            row = self.session.execute(self.q_newest, (user_id,)).one()
            up_to = int(row.created_at) if row else now_ms()
        self.session.execute(self.u_mark, (up_to * 1000, up_to, user_id))
        return self.read_until(user_id)


def list_notifications(session: Session, user_id: str, limit: int = 50,
                       before: int | None = None) -> list[dict[str, Any]]:
    """Newest-first notifications of ``user_id`` with a ``read`` flag (serving-free helper)."""
    return NotificationStore(session).list(user_id, limit, before)


def unread_count(session: Session, user_id: str) -> int:
    """Unread notifications of ``user_id``, capped at :data:`UNREAD_CAP`."""
    return NotificationStore(session).unread_count(user_id)


def mark_read(session: Session, user_id: str, up_to: int | None = None) -> int:
    """Mark ``user_id``'s notifications read up to ``up_to`` (default: all); returns the watermark."""
    return NotificationStore(session).mark_read(user_id, up_to)
