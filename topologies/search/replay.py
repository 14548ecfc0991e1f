"""``feedstream topology replay search``: rebuild the index from the log into a fresh index, swap the alias.

1. Create ``<alias>-<ms>`` (empty, current mapping) and apply users.v1, posts.v1, then
   engagement-counts.v1 and engagements.v1 from their first offsets to the ends seen at the start, with the worker's
   own :func:`topologies.search.app.process_batch` (poison is skipped: the live worker dead-lettered it;
   so are posts by authors who never registered, users.v1 being the evidence).
2. Point the alias at the new index atomically (the old index is deleted).
3. Catch up from those ends to the current ends: what the live worker wrote to the old index
   while the rebuild ran. Writes are versioned, so applying an event twice changes nothing.

The live worker may keep running throughout; it writes through the alias.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings
from stores import search
from streams.catalog import ENGAGEMENT_COUNTS, ENGAGEMENTS, POSTS, USERS
from streams.serde import Serde
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import log_user_check, note_registrations
from topologies.replay import drain
from topologies.search.app import Index, process_batch

ORDER = (USERS.name, POSTS.name, ENGAGEMENT_COUNTS.name, ENGAGEMENTS.name)  # popularity needs its post first
Offsets = dict[tuple[str, int], int]


@dataclass
class RebuildStats:
    index: str = ""
    old: tuple[str, ...] = ()
    records: int = 0
    skipped: int = 0
    caught_up: int = 0
    seconds: float = 0.0


def _apply_range(settings: Settings, index: Index, serde: Serde, starts: Offsets | None,
                 stats: RebuildStats, batch: int, registered: dict[str, int] | None = None) -> tuple[Offsets, int]:
    """Apply every record from ``starts`` (None: the first offsets) to the current ends; return the ends.

    Posts by authors who never registered are skipped, as the live worker dead-letters them."""
    from topologies.fanout.app import author_named

    registered = {} if registered is None else registered
    authors = log_user_check(settings, registered, named=author_named)

    def apply(pending: list[SourceRecord]) -> int:
        if pending[0].topic == USERS.name:
            note_registrations(pending, registered)
        users = authors if pending[0].topic == POSTS.name else None
        return len(process_batch(index, pending, users=users))
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"search-replay-{uuid.uuid4().hex}",
                  "enable.auto.commit": False, "isolation.level": "read_committed"})
    ends: Offsets = {}
    applied = 0
    try:
        for topic in ORDER:
            meta = c.list_topics(topic, timeout=10).topics[topic]
            todo: Offsets = {}
            assign = []
            for p in sorted(meta.partitions):
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                ends[(topic, p)] = hi
                start = max(lo, (starts or {}).get((topic, p), lo))
                if hi > start:
                    todo[(topic, p)] = hi
                    assign.append(TopicPartition(topic, p, start))
            if not assign:
                continue
            c.assign(assign)
            pending: list[SourceRecord] = []
            for rec in drain(c, todo, serde, stats):
                pending.append(rec)
                if len(pending) >= batch:
                    stats.skipped += apply(pending)
                    applied += len(pending)
                    pending.clear()
            if pending:
                stats.skipped += apply(pending)
                applied += len(pending)
            c.unassign()
    finally:
        c.close()
    return ends, applied


def rebuild(settings: Settings, *, batch: int = 1000) -> RebuildStats:
    """Rebuild the search index from the log into a fresh index, then swap the alias to it."""
    t0 = time.monotonic()
    stats = RebuildStats()
    os_ = search.client(settings.opensearch_url, timeout_s=60)
    stats.index = search.create_index(os_, settings.search_alias)
    serde = Serde(settings.registry_url)
    registered: dict[str, int] = {}
    ends, _ = _apply_range(settings, Index(settings, target=stats.index), serde, None, stats, batch, registered)
    os_.indices.refresh(index=stats.index)
    stats.old = tuple(search.swap_alias(os_, settings.search_alias, stats.index))
    _, stats.caught_up = _apply_range(settings, Index(settings, target=stats.index), serde, ends, stats, batch,
                                      registered)
    stats.seconds = time.monotonic() - t0
    return stats
