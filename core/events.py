"""Build event dicts with their envelope filled in (event id, time, actor, schema version)."""

from __future__ import annotations

import uuid
from typing import Any

from core.clock import now_ms
from core.ids import new_post_id


def envelope(actor_id: str, occurred_at: int | None = None) -> dict[str, Any]:
    """Return the envelope fields every event starts with."""
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": now_ms() if occurred_at is None else occurred_at,
        "actor_id": actor_id,
        "schema_version": 1,
    }


def new_event(actor_id: str, /, **fields: Any) -> dict[str, Any]:
    """Return ``fields`` behind a fresh envelope, e.g. ``new_event(uid, user_id=uid, handle="ann", ...)``."""
    return {**envelope(actor_id), **fields}


def post_created(author: str, text: str = "hello", visibility: str = "PUBLIC",
                 post_id: int | None = None) -> tuple[str, dict[str, Any]]:
    """A PostCreated event ``(record, value)`` without media, links, hashtags or mentions."""
    return "PostCreated", new_event(author, post_id=post_id or new_post_id(), author_id=author, text=text,
                                    media=[], links=[], hashtags=[], mentions=[], visibility=visibility)


def dead_letter(*, group: str, topic: str, partition: int, offset: int, key: bytes | None,
                value: bytes | None, error: str, error_type: str, event_id: str | None = None,
                at_ms: int | None = None) -> dict[str, Any]:
    """The DeadLetter event for a record ``group`` could not process, with its source offset.

    ``event_id`` and ``at_ms`` default to a fresh UUID and now; pass them for a deterministic
    letter (e.g. a late event that a replay must dead-letter under the same id).
    """
    at = now_ms() if at_ms is None else at_ms
    env = envelope(group, at)
    if event_id is not None:
        env["event_id"] = event_id
    return {**env, "source_topic": topic, "source_partition": partition, "source_offset": offset,
            "key": key, "value": value, "error": error[:2000], "error_type": error_type,
            "failed_at": at, "consumer_group": group}
