"""Polling for eventually consistent results."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(fn: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.1) -> T:
    """Poll ``fn`` until it returns a truthy value; raise AssertionError with the last value on timeout."""
    return poll(fn, "condition", timeout_s, interval_s)


def poll(fn: Callable[[], T], what: str, timeout_s: float = 60.0, interval_s: float = 0.1) -> T:
    """Call ``fn`` until truthy (generous deadline, short interval); fail naming ``what``."""
    deadline, value = time.monotonic() + timeout_s, fn()
    while not value and time.monotonic() < deadline:
        time.sleep(interval_s)
        value = fn()
    if not value:
        raise AssertionError(f"{what} not within {timeout_s}s (last {value!r})")
    return value
