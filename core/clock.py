"""Time helpers: the clock in epoch milliseconds and Avro ``timestamp-millis`` values."""

from __future__ import annotations

import time as _time
from typing import Any

DAY_MS = 86_400_000


def now_ms() -> int:
    """Return the current Unix time in milliseconds."""
    return _time.time_ns() // 1_000_000


def millis(at: Any) -> int:
    """Epoch ms of an Avro timestamp-millis value (a ``datetime`` as decoded, or already an int)."""
    return int(at.timestamp() * 1000) if hasattr(at, "timestamp") else int(at)
