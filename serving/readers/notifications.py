"""A user's notifications (Cassandra only): list, unread count, read watermark."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cassandra.cluster import Session

from serving.readers.base import Down, Guard, Unavailable
from stores.notifications import NotificationStore


class CassandraNotifications:
    """``notifications_by_user`` through one prepared :class:`~stores.notifications.NotificationStore`
    per session; every call raises Unavailable if Cassandra is down."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra
        self._stores: dict[int, NotificationStore] = {}

    @contextmanager
    def _store(self) -> Iterator[NotificationStore]:
        try:
            with self.cassandra.open() as s:
                yield self._stores.get(id(s)) or self._stores.setdefault(id(s), NotificationStore(s))
        except Down as exc:
            raise Unavailable("cassandra unavailable: notifications cannot be read") from exc

    def page(self, user_id: str, limit: int, before: int | None) -> list[dict[str, Any]]:
        """Newest-first notifications created before ``before``, at most ``limit``."""
        with self._store() as st:
            return st.list(user_id, limit, before)

    def unread(self, user_id: str) -> int:
        """Unread notifications (capped)."""
        with self._store() as st:
            return st.unread_count(user_id)

    def mark_read(self, user_id: str, up_to: int | None) -> int:
        """Mark notifications up to ``up_to`` (default: all) read; the new watermark."""
        with self._store() as st:
            return st.mark_read(user_id, up_to)
