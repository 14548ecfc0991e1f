"""Catalog invariants: routing, keys, co-partitioning, configs."""

from __future__ import annotations

import pytest

from core.settings import Settings
from streams import catalog
from streams.catalog import ALL_TOPICS, ENGAGEMENTS, GRAPH, POSTS, get_topic, topic_for
from streams.errors import UnknownEventError
from streams.samples import sample_event
from streams.schemas import default_schemas

pytestmark = pytest.mark.unit
SCHEMAS = default_schemas()


def test_every_event_schema_goes_to_exactly_one_topic() -> None:
    routed = [r for t in ALL_TOPICS for r in t.value_schemas]
    assert sorted(routed) == sorted(SCHEMAS.events)
    assert len(routed) == len(set(routed))


def test_topic_names_are_versioned_and_unique() -> None:
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    registry = {t.name for t in catalog.REGISTRY_TOPICS}  # Apicurio's own KafkaSQL topics
    assert registry == {"kafkasql-journal", "kafkasql-snapshots"}
    assert all(n.endswith(".v1") for n in names if n not in registry)
    for constant in ("USERS", "POSTS", "GRAPH", "ENGAGEMENTS", "TIMELINE_UPDATES", "ENGAGEMENT_COUNTS",
                     "TRENDING", "MODERATION_VERDICTS", "MODERATION", "NOTIFICATIONS", "DEAD_LETTERS", "REGISTRY_JOURNAL",
                     "REGISTRY_SNAPSHOTS"):
        assert getattr(catalog, constant) in ALL_TOPICS


@pytest.mark.parametrize("topic", [t for t in ALL_TOPICS if t.value_schemas], ids=lambda t: t.name)
def test_every_record_of_a_topic_has_its_key_field(topic: catalog.Topic) -> None:
    for record in topic.value_schemas:
        fields = [f["name"] for f in SCHEMAS.standalone[record]["fields"]]
        assert topic.key_field_for(record) in fields, record


def test_copartitioning_keys() -> None:
    assert POSTS.key_field == "author_id"
    assert GRAPH.key_field_for("Followed") == GRAPH.key_field_for("Unfollowed") == "followee_id"
    for name in ("FriendRequestSent", "FriendRequestAccepted", "FriendRequestDeclined"):
        assert GRAPH.key_field_for(name) == "to_id"
    assert GRAPH.key_field_for("io.feedstream.events.Blocked") == "blocker_id"
    assert GRAPH.key_field_for("Unfriended") == "friend_id"
    assert ENGAGEMENTS.key_field == "post_id"
    # a post by u1 and the edge "someone follows u1" carry the same key bytes ...
    post = sample_event("PostCreated", author_id="u1")
    edge = sample_event("Followed", follower_id="u2", followee_id="u1")
    assert POSTS.key_for("PostCreated", post) == GRAPH.key_for("Followed", edge) == b"u1"
    # ... and the two topics have the same partition count, so the bytes land on the same partition.
    for settings in (Settings(), Settings(topic_partitions=12)):
        assert POSTS.resolved(settings).partitions == GRAPH.resolved(settings).partitions


def test_engagement_key_is_post_id_as_decimal_string() -> None:
    like = sample_event("Liked", post_id=123456789)
    assert ENGAGEMENTS.key_for("Liked", like) == b"123456789"


def test_resolved_fills_partitions_and_replication_from_settings() -> None:
    resolved = POSTS.resolved(Settings(topic_partitions=6, topic_replication=3))
    assert (resolved.partitions, resolved.replication) == (6, 3)
    assert catalog.REGISTRY_JOURNAL.resolved(Settings(topic_partitions=6)).partitions == 1
    assert POSTS.partitions is None  # the constant itself stays settings-driven


def test_lookups() -> None:
    assert get_topic("posts.v1") is POSTS
    assert topic_for("PostDeleted") is topic_for("io.feedstream.events.PostDeleted") is POSTS
    assert topic_for("DeadLetter") is catalog.DEAD_LETTERS
    with pytest.raises(UnknownEventError):
        get_topic("nope.v1")
    with pytest.raises(UnknownEventError):
        topic_for("MediaRef")


def test_configs_are_valid_kafka_values() -> None:
    for topic in ALL_TOPICS:
        assert topic.cleanup_policy in ("delete", "compact", "compact,delete")
        assert topic.retention_ms == -1 or topic.retention_ms > 0
        assert set(topic.configs) == {"cleanup.policy", "retention.ms"}
