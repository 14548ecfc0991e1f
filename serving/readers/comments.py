"""A post's comments (Cassandra only): one thread's page, and the first replies under each root."""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Session

from core.rows import TOP_LEVEL
from serving.readers.base import Down, Guard, Unavailable
from stores.comments import CommentStore

Comment = dict[str, Any]


class CassandraComments:
    """``comments_by_post`` through one prepared :class:`~stores.comments.CommentStore` per session."""

    source = "cassandra"

    def __init__(self, cassandra: Guard[Session]) -> None:
        self.cassandra = cassandra
        self._stores: dict[int, CommentStore] = {}

    def _store(self, s: Session) -> CommentStore:
        return self._stores.get(id(s)) or self._stores.setdefault(id(s), CommentStore(s))

    def page(self, post_id: int, thread: int, after: int, limit: int,
             replies_cap: int) -> tuple[list[Comment], list[Comment]]:
        """Up to ``limit + 1`` comments of ``thread`` above ``after`` (the extra one tells the caller
        there are more) and, at the top level, up to ``replies_cap`` replies under the first ``limit``;
        Unavailable if Cassandra is down."""
        try:
            with self.cassandra.open() as s:
                store = self._store(s)
                page = store.page(post_id, thread, after, limit + 1)
                replies = store.replies(post_id, [c["comment_id"] for c in page[:limit]], replies_cap) \
                    if thread == TOP_LEVEL else []
                return page, replies
        except Down as exc:
            raise Unavailable("cassandra unavailable: comments cannot be read") from exc
