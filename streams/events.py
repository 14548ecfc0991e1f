"""Build event dicts with their envelope filled in (event id, time, actor, schema version)."""

from __future__ import annotations

import time
import uuid
from typing import Any


def now_ms() -> int:
    """Return the current Unix time in milliseconds."""
    return time.time_ns() // 1_000_000


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
