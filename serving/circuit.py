"""Circuit breakers: stop calling a failing dependency for a while, then probe it again.

A breaker is CLOSED (calls pass), OPEN after ``failures`` consecutive failures (calls are refused
at once with :class:`BreakerOpen` for ``reset_s``), then HALF-OPEN (one probe call passes; success
closes it, failure re-opens it). The read path keeps one breaker per engine (Redis, Cassandra)
and one for the ranker, and degrades instead of answering 5xx.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class BreakerOpen(Exception):
    """The breaker is open: the dependency is presumed down and was not called."""


class Breaker:
    """A thread-safe consecutive-failure circuit breaker."""

    def __init__(self, name: str, failures: int = 3, reset_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.threshold, self.reset_s, self.clock = name, failures, reset_s, clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """CLOSED, OPEN or HALF_OPEN."""
        with self._lock:
            return self._state()

    def _state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self.clock() - self._opened_at >= self.reset_s else OPEN

    def allow(self) -> bool:
        """Whether a call may go through now (claims the single half-open probe)."""
        with self._lock:
            st = self._state()
            if st == CLOSED:
                return True
            if st == HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        """Record a successful call: close the breaker."""
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False

    def failure(self) -> None:
        """Record a failed call: open the breaker at the threshold (or after a failed probe)."""
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self.clock()
            self._probing = False

    def release(self) -> None:
        """Give back a claimed half-open probe without a verdict (the call failed for another reason)."""
        with self._lock:
            self._probing = False

    def call(self, fn: Callable[[], T], errors: tuple[type[BaseException], ...] = (Exception,)) -> T:
        """Run ``fn`` through the breaker; ``errors`` count as failures and are re-raised."""
        if not self.allow():
            raise BreakerOpen(f"{self.name} circuit open")
        try:
            out = fn()
        except errors:
            self.failure()
            raise
        self.success()
        return out
