"""The pluggable durable log behind the registry, and its in-memory backend for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from streams.registry.errors import StorageError
from streams.registry.records import StoredRecord


@runtime_checkable
class Storage(Protocol):
    """An append-only, replayable log of registry records (last value per key wins)."""

    def start(self) -> None:
        """Create or open the log; idempotent."""

    def replay(self) -> Iterator[StoredRecord]:
        """Yield every record currently in the log, oldest first."""

    def append(self, records: Sequence[StoredRecord]) -> None:
        """Durably append ``records`` in order; return only once they are stored, else raise."""

    def ping(self) -> None:
        """Raise :class:`StorageError` if the log is unreachable."""

    def close(self) -> None:
        """Release connections; the log itself stays."""


class MemoryLog:
    """A shared in-process log that several :class:`MemoryStorage` instances can reopen."""

    def __init__(self) -> None:
        self.records: list[StoredRecord] = []
        self.fail_next_append = False
        self.lock = threading.Lock()


class MemoryStorage:
    """In-memory :class:`Storage` for unit tests; share a :class:`MemoryLog` to simulate restarts."""

    name = "memory"

    def __init__(self, log: MemoryLog | None = None) -> None:
        self.log = log or MemoryLog()
        self.started = False

    def start(self) -> None:
        """Mark the storage started."""
        self.started = True

    def replay(self) -> Iterator[StoredRecord]:
        """Yield a snapshot of the log."""
        self._require_started()
        with self.log.lock:
            snapshot = list(self.log.records)
        yield from snapshot

    def append(self, records: Sequence[StoredRecord]) -> None:
        """Append all records, or none when a failure was injected."""
        self._require_started()
        with self.log.lock:
            if self.log.fail_next_append:
                self.log.fail_next_append = False
                raise StorageError("Injected storage failure")
            self.log.records.extend(records)

    def ping(self) -> None:
        """Always reachable once started."""
        self._require_started()

    def close(self) -> None:
        """Mark the storage closed."""
        self.started = False

    def _require_started(self) -> None:
        if not self.started:
            raise StorageError("Storage is not started")
