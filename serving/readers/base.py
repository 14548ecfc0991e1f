"""What every reader shares: guarded engine access, the "down" and "unavailable" outcomes, fallback.

A :class:`Guard` is one engine (Redis or Cassandra) behind its circuit breaker: entering it raises
:class:`Down` when the breaker is open or the engine fails with one of its "down" errors, so a
reader either answers or reports ``Down``. :class:`Fallback` asks a primary reader, then a
secondary, and raises :class:`Unavailable` (503 at the HTTP edge) when neither answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import cassandra
import redis as _redis
from cassandra.cluster import NoHostAvailable

from serving.circuit import Breaker

T = TypeVar("T")
C = TypeVar("C")
R = TypeVar("R", bound="Sourced")

REDIS_ERRORS: tuple[type[BaseException], ...] = (_redis.ConnectionError, _redis.TimeoutError)
CASSANDRA_ERRORS: tuple[type[BaseException], ...] = (
    NoHostAvailable, cassandra.OperationTimedOut, cassandra.RequestExecutionException)


class Down(Exception):
    """One engine cannot answer now: its breaker is open or the call failed with a "down" error."""


class Unavailable(Exception):
    """No engine can answer this read (503 with Retry-After at the HTTP edge)."""


class NotFound(LookupError):
    """The thing read does not exist (404 at the HTTP edge)."""


class Forbidden(PermissionError):
    """The viewer may not see the thing read (403 at the HTTP edge)."""


class Guard(Generic[C]):
    """One engine's client behind its circuit breaker; ``with guard.open() as client:`` or :class:`Down`."""

    def __init__(self, name: str, connect: Callable[[], C], breaker: Breaker,
                 errors: tuple[type[BaseException], ...]) -> None:
        self.name, self.connect, self.breaker, self.errors = name, connect, breaker, errors

    @contextmanager
    def open(self) -> Iterator[C]:
        """Yield the client if the breaker allows; "down" errors count as failures and become ``Down``.

        Any other exception (including a nested engine's ``Down``) gives back a half-open probe
        without a verdict and propagates unchanged.
        """
        if not self.breaker.allow():
            raise Down(f"{self.name} circuit open")
        try:
            yield self.connect()
        except self.errors as exc:
            self.breaker.failure()
            raise Down(f"{self.name} unavailable: {exc}") from exc
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.success()


@dataclass(frozen=True)
class Partial(Generic[T]):
    """An answer and whether it is complete (False when a lower engine could only partly answer)."""

    value: T
    complete: bool = True


@dataclass(frozen=True)
class Served(Generic[T]):
    """A composite's answer and the reader that gave it (``source``: "redis" or "cassandra")."""

    value: T
    source: str
    degraded: bool


class Sourced(Protocol):
    """A reader implementation that names its engine."""

    @property
    def source(self) -> str:
        """ "redis" or "cassandra"."""
        ...


class Fallback(Generic[R]):
    """Ask ``primary`` (Redis), then ``secondary`` (Cassandra) when the primary is ``Down``."""

    def __init__(self, primary: R, secondary: R, unavailable: str = "neither Redis nor Cassandra answers") -> None:
        self.primary, self.secondary, self.unavailable = primary, secondary, unavailable

    def read(self, ask: Callable[[R], T]) -> Served[T]:
        """``ask(reader)`` of the first reader that answers; :class:`Unavailable` if neither does."""
        try:
            return Served(ask(self.primary), self.primary.source, False)
        except Down:
            pass
        try:
            return Served(ask(self.secondary), self.secondary.source, True)
        except Down as exc:
            raise Unavailable(self.unavailable) from exc
