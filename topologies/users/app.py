"""Users worker: users.v1 -> profiles (Cassandra + Redis cache); engagements.v1 -> comment threads."""

from __future__ import annotations

import asyncio
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
from topologies.faust_runtime import (
    SourceRecord,
    catalog_topic,
    create_faust_app,
    make_serde,
    register_agent,
    run_worker,
)
from topologies.users.logic import COMMENT_RECORDS, USER_RECORDS, comment_write, profile_write


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


def process_engagement(eng: Engines, rec: SourceRecord) -> None:
    """Apply one engagements.v1 event (only comments matter here), then mark the progress."""
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
    app = create_faust_app(settings, "users", app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    eng = Engines(settings)

    async def on_user(rec: SourceRecord) -> None:
        await asyncio.to_thread(process_user, eng, rec)

    async def on_engagement(rec: SourceRecord) -> None:
        await asyncio.to_thread(process_engagement, eng, rec)

    register_agent(app, catalog_topic(app, USERS, settings), on_user, serde=serde, name="users-profiles")
    register_agent(app, catalog_topic(app, ENGAGEMENTS, settings), on_engagement, serde=serde,
                   name="users-comments")
    return app


def run(settings: Settings) -> None:
    """Run the users worker until interrupted."""
    run_worker(create_app(settings))
