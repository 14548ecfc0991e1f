"""Consumer lag per topology: committed offsets of its group against the topics' end offsets."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings

# topology -> (consumer group, source topics); Faust groups are feedstream-<name>; the trending
# Flink job's Kafka source commits its group's offsets on each checkpoint
TOPOLOGY_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "graph": ("feedstream-graph", ("graph.v1",)),
    "fanout": ("feedstream-fanout", ("posts.v1",)),
    "engagement": ("feedstream-engagement", ("engagements.v1", "graph.v1")),
    "users": ("feedstream-users", ("users.v1", "engagements.v1")),
    "trending": ("trending", ("posts.v1", "engagements.v1", "moderation-verdicts.v1")),
    "search": ("feedstream-search", ("posts.v1", "users.v1", "engagement-counts.v1", "engagements.v1")),
    "moderation": ("feedstream-moderation", ("posts.v1", "engagements.v1", "moderation.v1")),
    "media": ("feedstream-media", ("media.v1", "posts.v1")),
}


# where each topology publishes its live lag: (file_sd job, metric summed over its samples); the
# trending job's Flink reporter publishes the Kafka source's FLIP-33 pendingRecords
LIVE_LAG = {"trending": ("flink", "flink_taskmanager_job_task_operator_pendingRecords")}
WORKER_LAG = ("topology", "feedstream_consumer_lag")


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
                total_committed += max(tp.offset, 0)
            out.append(Lag(name, group, total_committed, total_end))
        finally:
            c.close()
    return out


def live_lag(settings: Settings, topology: str) -> float | None:
    """``topology``'s lag as its process publishes it on ``/metrics`` (None: nothing answers)."""
    job, metric = LIVE_LAG.get(topology, WORKER_LAG)
    return scraped(settings, topology, metric, job=job)


def scraped(settings: Settings, name: str, metric: str, timeout_s: float = 2.0, *,
            job: str = "topology") -> float | None:
    """The sum of ``metric`` on process ``job``/``name``'s ``/metrics`` (None: nothing answers).

    The same numbers the local Prometheus scrapes (the process published its port under the state dir).
    """
    from topologies.metrics import read_target

    target = read_target(settings.state_dir, job, name)
    if target is None:
        return None
    try:
        text = httpx.get(f"http://{target}/metrics", timeout=timeout_s).text
    except httpx.HTTPError:
        return None
    return sum_of(text, metric)


def sum_of(text: str, metric: str) -> float:
    """The sum of ``metric``'s samples in a Prometheus text exposition (0 when it has none)."""
    return sum(s.value for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == metric)
