"""Search worker: posts.v1, users.v1, engagement-counts.v1 and engagements.v1 -> OpenSearch (bulk API).

One batch agent per source topic; each batch is planned by :func:`topologies.search.logic.plan`
(over the indexed documents it edits, read with a realtime multi-get) and written by one bulk call
through the alias (:func:`stores.search.apply`). Stale writes (older versions) are no-ops; refused
events (bad fields, an edit by another author) are dead-lettered; any other bulk error crashes the
worker with the batch unacked, so the restarted worker writes it again (idempotent by version).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import faust

from core.settings import Settings
from stores import search
from streams.catalog import ENGAGEMENT_COUNTS, ENGAGEMENTS, POSTS, USERS
from streams.errors import PoisonRecord, StreamsError
from streams.serde import Serde
from topologies.fanout.app import author_check
from topologies.fanout.logic import UnknownAuthor
from topologies.fanout.runtime import Stores
from topologies.faust_runtime import (
    SourceRecord,
    catalog_topic,
    create_faust_app,
    dead_letter_record,
    dlq_topic,
    in_thread,
    make_serde,
    register_batch_agent,
    run_worker,
)
from topologies.graph.app import UserCheck
from topologies.search.logic import COUNT_RECORDS, POST_RECORDS, USER_RECORDS, needs_current, plan

ENGAGEMENT_RECORDS = ("Liked", "Unliked", "CommentAdded", "CommentDeleted", "Shared", "ReactionAdded",
                      "ReactionRemoved")  # every engagements.v1 record; plan() uses likes and comments

log = logging.getLogger(__name__)
SOURCES = (POSTS, USERS, ENGAGEMENT_COUNTS, ENGAGEMENTS)
RECORDS = {POSTS.name: POST_RECORDS, USERS.name: USER_RECORDS, ENGAGEMENT_COUNTS.name: COUNT_RECORDS,
           ENGAGEMENTS.name: ENGAGEMENT_RECORDS}


class IndexError_(StreamsError):
    """OpenSearch refused writes for a reason other than a stale version (crashes the worker)."""


class Index:
    """The OpenSearch client and the index the worker writes (the alias, or a replay's fresh index)."""

    def __init__(self, settings: Settings, target: str | None = None) -> None:
        self.settings = settings
        self._target = target
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = search.client(self.settings.opensearch_url)
        return self._client

    @property
    def target(self) -> str:
        with self._lock:  # the agents' threads share it
            if self._target is None:
                search.ensure_alias(self.client, self.settings.search_alias)
                self._target = self.settings.search_alias
        return self._target


def check_search_record(rec: SourceRecord) -> None:
    if rec.name not in RECORDS.get(rec.topic, ()):
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")


def process_batch(index: Index, recs: Sequence[SourceRecord], *, refresh: bool = False,
                  users: UserCheck | None = None) -> list[tuple[SourceRecord, PoisonRecord]]:
    """Index one batch; return the records to dead-letter. Raises on a write OpenSearch refused.

    With ``users`` (the live worker), a PostCreated whose author never registered is refused by the
    fan-out's rule (:func:`topologies.fanout.app.author_check`: registered by ``occurred_at + grace``,
    proven by the users topology's progress), so search holds no post the feeds refuse (issue 14
    item 5); its edits then find no post to edit and are refused too.
    """
    refused: list[tuple[SourceRecord, PoisonRecord]] = []
    if users is not None:
        unknown = users.unknown(list(recs))
        refused = [(rec, UnknownAuthor(f"PostCreated: author {', '.join(sorted(m))} never registered"))
                   for rec, m in zip(recs, unknown, strict=True) if m]
        recs = [rec for rec, m in zip(recs, unknown, strict=True) if not m]
    events = [(r.name, r.value) for r in recs]
    current = search.get_docs(index.client, index.target, needs_current(events))
    p = plan(events, current)
    stats = search.apply(index.client, index.target, p.writes, p.popularity, p.interests, refresh=refresh)
    if stats.errors:
        raise IndexError_(f"{len(stats.errors)} bulk write(s) failed, first: {stats.errors[0]}")
    return refused + [(recs[i], exc) for i, exc in p.refused]


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, index: Index | None = None) -> faust.App:
    """Build the search Faust app (a batch agent per source topic); ``index`` is a test seam."""
    app = create_faust_app(settings, "search", app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    idx = index or Index(settings)
    dlq = dlq_topic(app)
    authors = author_check(Stores(settings))  # posts.v1 only: the other topics name no author to check

    async def handle(recs: list[SourceRecord]) -> None:
        users = authors if recs and recs[0].topic == POSTS.name else None
        for rec, exc in await in_thread(app, process_batch, idx, recs, users=users):
            await dead_letter_record(app, serde, dlq, app.conf.id, rec, exc)

    for topic in SOURCES:
        register_batch_agent(app, catalog_topic(app, topic, settings), handle, serde=serde,
                             name=f"search-{topic.name.split('.')[0]}", validate=check_search_record,
                             within_s=0.05)
    return app


def run(settings: Settings) -> None:
    """Run the search worker until interrupted."""
    run_worker(create_app(settings))
