"""``topics apply`` planning: what changes against a given broker state (no broker needed)."""

from __future__ import annotations

import pytest

from core.settings import Settings
from streams.admin import TopicState, plan_changes
from streams.catalog import ALL_TOPICS, GRAPH, POSTS, TRENDING

pytestmark = pytest.mark.unit
SETTINGS = Settings(topic_partitions=3, topic_replication=1)
RESOLVED = [t.resolved(SETTINGS) for t in ALL_TOPICS]


def _as_broker(topics, **changes) -> dict[str, TopicState]:
    out = {t.name: TopicState(t.name, t.partitions, t.replication, dict(t.configs)) for t in topics}
    out.update(changes)
    return out


def test_empty_broker_creates_everything() -> None:
    changes = plan_changes(RESOLVED, {})
    assert [c.kind for c in changes] == ["create"] * len(RESOLVED)
    assert "created posts.v1 (3 partitions)" in [str(c) for c in changes]
    assert "created kafkasql-journal (1 partition)" in [str(c) for c in changes]


def test_matching_broker_means_no_changes() -> None:
    assert plan_changes(RESOLVED, _as_broker(RESOLVED)) == []


def test_config_drift_and_partition_growth_are_planned() -> None:
    trending = TRENDING.resolved(SETTINGS)
    broker = _as_broker(RESOLVED, **{
        "trending.v1": TopicState("trending.v1", 2, 1, {"cleanup.policy": "delete", "retention.ms": "1000"}),
    })
    changes = [str(c) for c in plan_changes([trending], broker)]
    assert changes == [
        "updated trending.v1 retention.ms: 1000 -> 604800000",
        "increased trending.v1 partitions: 2 -> 3",
    ]


def test_shrinking_and_replication_are_only_warnings() -> None:
    posts = POSTS.resolved(SETTINGS)
    broker = {"posts.v1": TopicState("posts.v1", 6, 3, dict(posts.configs))}
    changes = plan_changes([posts], broker)
    assert {c.kind for c in changes} == {"extra-partitions", "replication"}
    assert not any(c.applied for c in changes)
    assert all(str(c).startswith("warning: ") for c in changes)


def test_copartitioned_topics_with_different_counts_are_flagged() -> None:
    posts, graph = POSTS.resolved(SETTINGS), GRAPH.resolved(SETTINGS)
    broker = _as_broker([posts, graph], **{"graph.v1": TopicState("graph.v1", 5, 1, dict(graph.configs))})
    kinds = [c.kind for c in plan_changes([posts, graph], broker)]
    assert "copartitioning" in kinds


def test_unresolved_topics_are_refused() -> None:
    with pytest.raises(AssertionError):
        plan_changes([POSTS], {})
