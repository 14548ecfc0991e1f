"""The topic catalog: every topic's name, key, partitions, cleanup policy, retention and value schemas.

Keys (UTF-8 strings) are chosen so the joins topologies need are co-partitioned:

- ``posts.v1`` is keyed by ``author_id`` and ``graph.v1``'s follow edges by ``followee_id``, with
  the same partition count: a post and its author's follower set land on the same partition.
- Friend-request events are keyed by ``to_id``, unfriends by ``friend_id`` and blocks by ``blocker_id``.
- ``engagements.v1`` is keyed by ``post_id`` (decimal string), so each post's counters have one writer.
- ``media.v1`` and ``media-results.v1`` are keyed by ``media_id``, so a media's results have one writer.
- ``timeline-updates.v1`` is keyed by ``reader_id``, ``notifications.v1`` by ``recipient_id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.settings import Settings, get_settings
from streams.errors import UnknownEventError

DAY_MS = 86_400_000
FOREVER = -1
EV = "io.feedstream.events."
DER = "io.feedstream.derived."


@dataclass(frozen=True)
class Topic:
    """One Kafka topic; ``partitions``/``replication`` of None mean "the settings' default"."""

    name: str
    key_field: str
    value_schemas: tuple[str, ...]
    description: str
    cleanup_policy: str = "delete"
    retention_ms: int = FOREVER
    partitions: int | None = None
    replication: int | None = None
    key_overrides: tuple[tuple[str, str], ...] = ()

    def key_field_for(self, record: str) -> str:
        """Return the value field whose value is the key of ``record`` (full or short name)."""
        for name, field in self.key_overrides:
            if name == record or name.rpartition(".")[2] == record:
                return field
        return self.key_field

    def key_for(self, record: str, value: Mapping[str, Any]) -> bytes:
        """Return the UTF-8 key of an event, taken from its key field."""
        return str(value[self.key_field_for(record)]).encode()

    def resolved(self, settings: Settings | None = None) -> Topic:
        """Return a copy with partitions and replication filled in from settings."""
        settings = settings or get_settings()
        return replace(
            self,
            partitions=self.partitions or settings.topic_partitions,
            replication=self.replication or settings.topic_replication,
        )

    @property
    def configs(self) -> dict[str, str]:
        """Broker-side topic configs this catalog manages."""
        return {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}


def _ev(*names: str) -> tuple[str, ...]:
    return tuple(EV + n for n in names)


USERS = Topic(
    "users.v1", "user_id", _ev("UserRegistered", "ProfileUpdated"),
    "User sign-ups and profile changes, keyed by user_id.",
)
POSTS = Topic(
    "posts.v1", "author_id", _ev("PostCreated", "PostEdited", "PostDeleted"),
    "Post lifecycle, keyed by author_id (co-partitioned with graph.v1 follow edges).",
)
GRAPH = Topic(
    "graph.v1", "followee_id",
    _ev("Followed", "Unfollowed", "FriendRequestSent", "FriendRequestAccepted",
        "FriendRequestDeclined", "Unfriended", "Blocked", "Unblocked"),
    "Social graph changes. Follows keyed by followee_id, friend requests by to_id, unfriends by "
    "friend_id, blocks by blocker_id.",
    key_overrides=(
        *((EV + n, "to_id") for n in ("FriendRequestSent", "FriendRequestAccepted", "FriendRequestDeclined")),
        *((EV + n, "blocker_id") for n in ("Blocked", "Unblocked")),
        (EV + "Unfriended", "friend_id"),
    ),
)
ENGAGEMENTS = Topic(
    "engagements.v1", "post_id",
    _ev("Liked", "Unliked", "CommentAdded", "CommentDeleted", "Shared", "ReactionAdded", "ReactionRemoved"),
    "Likes, comments, shares and reactions, keyed by post_id as a decimal string.",
)
TIMELINE_UPDATES = Topic(
    "timeline-updates.v1", "reader_id", (DER + "TimelineUpdate",),
    "Fan-out's writes to reader timelines, keyed by reader_id.", retention_ms=7 * DAY_MS,
)
ENGAGEMENT_COUNTS = Topic(
    "engagement-counts.v1", "post_id", (DER + "EngagementCount",),
    "Per-post engagement counts per minute window plus running totals (window fields null), "
    "keyed by post_id. Not compacted: compaction would keep only a post's last record.",
    retention_ms=30 * DAY_MS,
)
TRENDING = Topic(
    "trending.v1", "scope", (DER + "TrendingEntry",),
    "Ranked trending items per scope and window, keyed by scope.", retention_ms=7 * DAY_MS,
)
MODERATION_VERDICTS = Topic(
    "moderation-verdicts.v1", "content_key", (DER + "ModerationVerdict",),
    "Effective moderation verdict per content ('post:<id>', 'comment:<id>'), keyed by content_key; "
    "compacted (the latest verdict per content is kept).", cleanup_policy="compact",
)
MODERATION = Topic(
    "moderation.v1", "content_key", _ev("ModeratorDecided", "ContentReported", "DecisionAppealed"),
    "Moderator decisions, user reports and author appeals, keyed by content_key; kept forever "
    "(the audit trail: who, when, why).",
)
MEDIA = Topic(
    "media.v1", "media_id", _ev("MediaUploaded"),
    "Uploads that reached the object store (the API checked the object), keyed by media_id as a "
    "decimal string; the media topology processes them.",
)
MEDIA_RESULTS = Topic(
    "media-results.v1", "media_id", (DER + "MediaProcessed", DER + "MediaRejected"),
    "The media topology's outcome per upload: its variants, or why it was rejected; keyed by media_id, "
    "compacted (the latest result per media is kept).", cleanup_policy="compact",
)
NOTIFICATIONS = Topic(
    "notifications.v1", "recipient_id", (DER + "Notification",),
    "Notifications to deliver, keyed by recipient_id.", retention_ms=30 * DAY_MS,
)
DEAD_LETTERS = Topic(
    "dead-letters.v1", "source_topic", (DER + "DeadLetter",),
    "Records no consumer could process, with original bytes and source offset; kept forever.",
)
REGISTRY_JOURNAL = Topic(
    "kafkasql-journal", "key", (),
    "Apicurio Registry's KafkaSQL journal (its own records, not Avro); kept forever, one partition.",
    partitions=1,
)
REGISTRY_SNAPSHOTS = Topic(
    "kafkasql-snapshots", "key", (),
    "Apicurio Registry's KafkaSQL snapshots (its own records); kept forever, one partition.",
    partitions=1,
)
REGISTRY_TOPICS: tuple[Topic, ...] = (REGISTRY_JOURNAL, REGISTRY_SNAPSHOTS)

ALL_TOPICS: tuple[Topic, ...] = (
    USERS, POSTS, GRAPH, ENGAGEMENTS, TIMELINE_UPDATES, ENGAGEMENT_COUNTS, TRENDING,
    MODERATION_VERDICTS, MODERATION, MEDIA, MEDIA_RESULTS, NOTIFICATIONS, DEAD_LETTERS, *REGISTRY_TOPICS,
)
COPARTITIONED: tuple[tuple[Topic, ...], ...] = ((POSTS, GRAPH),)  # must keep equal partition counts
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
_ROUTES: dict[str, Topic] = {}
for _topic in ALL_TOPICS:
    for _record in _topic.value_schemas:
        _ROUTES[_record] = _ROUTES[_record.rpartition(".")[2]] = _topic


def get_topic(name: str) -> Topic:
    """Return the catalog entry for a topic name, e.g. ``get_topic("posts.v1")``."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownEventError(f"no topic {name!r} in the catalog") from None


def topic_for(record: str) -> Topic:
    """Return the topic an event type is produced to (full or short record name)."""
    try:
        return _ROUTES[record]
    except KeyError:
        raise UnknownEventError(f"event type {record!r} is not routed to any topic") from None
