"""Users worker: users.v1 -> profiles (Cassandra + Redis cache); engagements.v1 -> comment threads.

A comment (added or deleted) by a user who never registered is dead-lettered ``UnknownUser``
before anything is stored, by the engagement worker's rule and evidence
(:func:`topologies.engagement.app.engagement_user_check`), so the thread and the counters agree
(issue 14 items 5/6; docs/reliability.md says why the check is not a plain lookup in this
worker's own profiles).
"""

from __future__ import annotations

from typing import Any

import faust

from core.settings import Settings
from stores import cassandra, progress
from stores import redis as redis_store
from stores.comments import CommentStore
from stores.users import apply_profile
from streams.catalog import ENGAGEMENTS, USERS
from streams.errors import PoisonRecord
from streams.serde import Serde
from topologies.engagement.app import engagement_user_check
from topologies.fanout.runtime import Stores
from topologies.faust_runtime import (
    SourceRecord,
    catalog_topic,
    create_faust_app,
    in_thread,
    make_serde,
    register_agent,
    run_worker,
)
from topologies.graph.app import UserCheck
from topologies.graph.logic import UnknownUser
from topologies.users.logic import COMMENT_RECORDS, USER_RECORDS, comment_write, profile_write

MAX_POLL_RECORDS = 500  # < stream_buffer_maxsize (4,096) - its pressure-high mark (3,276)


class Engines:
    """Lazily connected Cassandra session, Redis client and comment store."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._r: Any = None
        self._comments: CommentStore | None = None

    @property
    def r(self) -> Any:
        """The sync Redis client."""
        if self._r is None:
            self._r = redis_store.client(self.settings)
        return self._r

    @property
    def comments(self) -> CommentStore:
        """The comment store (connects on first use)."""
        if self._comments is None:
            self._comments = CommentStore(cassandra.session(self.settings))
        return self._comments


def process_user(eng: Engines, rec: SourceRecord) -> None:
    """Apply one users.v1 event."""
    if rec.name not in USER_RECORDS:
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")
    apply_profile(eng.comments.session, eng.r, profile_write(rec.name, rec.value))
    progress.mark(eng.r, "users", {(rec.topic, rec.partition): rec.offset})


def refuse_unknown_commenter(users: UserCheck | None, rec: SourceRecord) -> None:
    """Raise :class:`UnknownUser` (dead-lettered by the agent, with the source offset) for a comment
    whose ``user_id`` was not registered by its ``occurred_at`` + grace; ``users=None``: no check."""
    if users is not None and rec.name in COMMENT_RECORDS:
        missing = users.unknown([rec])[0]
        if missing:
            raise UnknownUser(f"{rec.name}: user {', '.join(sorted(missing))} never registered")


def process_engagement(eng: Engines, rec: SourceRecord, users: UserCheck | None = None) -> None:
    """Apply one engagements.v1 event (only comments matter here), then mark the progress.

    A comment by a user who never registered raises :class:`UnknownUser` before any write (the
    progress mark is still raised: the record is dealt with, refused)."""
    try:
        refuse_unknown_commenter(users, rec)
    except UnknownUser:
        progress.mark(eng.r, "users", {(rec.topic, rec.partition): rec.offset})
        raise
    if rec.name in COMMENT_RECORDS:
        store, v = eng.comments, rec.value
        if rec.name == "CommentAdded":
            store.apply(comment_write(rec.name, v, store.thread_of(v.get("parent_comment_id"))))
        else:
            own = store.thread_of(v["comment_id"])
            if own is not None:
                store.apply(comment_write(rec.name, v, None, own))
    progress.mark(eng.r, "users", {(rec.topic, rec.partition): rec.offset})


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None) -> faust.App:
    """Build the users Faust app (agents on users.v1 and engagements.v1).

    Group and offset reset come from ``settings`` (:func:`topologies.faust_runtime.create_faust_app`);
    ``serde`` and ``broker`` are test seams.
    """
    # the comment agent may wait on this worker's own users.v1 progress (refuse_unknown_commenter):
    # bounded polls keep Faust's per-partition flow control from ever blocking the fetcher on a
    # full engagements buffer (pressure high at maxsize / 1.25 = 3,276; one poll adds <= 500)
    app = create_faust_app(settings, "users", app_id=app_id, broker=broker,
                           broker_max_poll_records=MAX_POLL_RECORDS)
    serde = serde or make_serde(settings)
    eng = Engines(settings)
    users = engagement_user_check(Stores(settings))

    async def on_user(rec: SourceRecord) -> None:
        await in_thread(app, process_user, eng, rec)

    async def on_engagement(rec: SourceRecord) -> None:
        await in_thread(app, process_engagement, eng, rec, users)

    register_agent(app, catalog_topic(app, USERS, settings), on_user, serde=serde, name="users-profiles")
    register_agent(app, catalog_topic(app, ENGAGEMENTS, settings), on_engagement, serde=serde,
                   name="users-comments")
    return app


def run(settings: Settings) -> None:
    """Run the users worker until interrupted."""
    run_worker(create_app(settings))
