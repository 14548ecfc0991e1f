"""Consumer lag per topology: committed offsets of its group against the topics' end offsets."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from core.settings import Settings

# topology -> (consumer group, source topics); Faust groups are feedstream-<name>
TOPOLOGY_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "graph": ("feedstream-graph", ("graph.v1",)),
    "fanout": ("feedstream-fanout", ("posts.v1",)),
    "engagement": ("feedstream-engagement", ("engagements.v1", "graph.v1")),
    "users": ("feedstream-users", ("users.v1", "engagements.v1")),
    "moderation": ("feedstream-moderation", ("posts.v1", "engagements.v1", "moderation.v1")),
}


@dataclass(frozen=True)
class Lag:
    """How far one topology's group is behind the end of its source topics."""

    topology: str
    group: str
    committed: int
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


def topology_lag(settings: Settings, timeout_s: float = 5.0) -> list[Lag]:
    """Committed offset and end offset, summed over partitions, per topology group."""
    out = []
    for name, (group, topics) in TOPOLOGY_SOURCES.items():
        c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                      "enable.auto.commit": False})
        try:
            md = c.list_topics(timeout=timeout_s)
            tps = [TopicPartition(t, p) for t in topics if t in md.topics
                   for p in md.topics[t].partitions]
            committed = c.committed(tps, timeout=timeout_s) if tps else []
            total_end = total_committed = 0
            for tp in committed:
                _low, high = c.get_watermark_offsets(tp, timeout=timeout_s)
                total_end += high
                total_committed += tp.offset if tp.offset >= 0 else 0
            out.append(Lag(name, group, total_committed, total_end))
        finally:
            c.close()
    return out
