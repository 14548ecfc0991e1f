"""Time-sortable 53-bit ids: ``(ms since 2024-01-01 UTC << 12) | seq``, exact as a double and in JS."""

from __future__ import annotations

import threading
import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SEQ_BITS = 12
MAX_ID = (1 << 53) - 1


class IdGenerator:
    """Thread-safe, strictly increasing id source; ``node_bits`` of the 12 sequence bits name the node."""

    def __init__(self, node_id: int = 0, node_bits: int = 0, clock=time.time) -> None:
        if not 0 <= node_bits <= 8 or not 0 <= node_id < (1 << node_bits):
            raise ValueError(f"node_id {node_id} does not fit in node_bits={node_bits} (max 8 bits)")
        self._counter_bits = SEQ_BITS - node_bits
        self._node = node_id << self._counter_bits
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new_id(self) -> int:
        """Return the next id; waits for the next millisecond if this one's sequence is used up."""
        with self._lock:
            ms = int(self._clock() * 1000) - EPOCH_MS
            ms = max(ms, self._last_ms)  # clock stepped back: keep issuing from the last millisecond
            if ms == self._last_ms:
                self._counter += 1
                if self._counter >> self._counter_bits:
                    while ms <= self._last_ms:
                        time.sleep(0.0001)
                        ms = max(int(self._clock() * 1000) - EPOCH_MS, ms)
                    self._counter = 0
            else:
                self._counter = 0
            self._last_ms = ms
            value = (ms << SEQ_BITS) | self._node | self._counter
        if value > MAX_ID:
            raise OverflowError("id space exhausted (year 2093)")
        return value


_default = IdGenerator()


def configure(node_id: int, node_bits: int) -> None:
    """Give this process a node number, so several writers never issue the same id."""
    global _default
    _default = IdGenerator(node_id, node_bits)


def new_id() -> int:
    """Return a new time-sortable id from the process-wide generator."""
    return _default.new_id()


def new_post_id() -> int:
    """Return a new post id (same id space as comments)."""
    return _default.new_id()


def id_timestamp_ms(id_: int) -> int:
    """Return the Unix epoch milliseconds at which ``id_`` was issued."""
    return (id_ >> SEQ_BITS) + EPOCH_MS


def min_id_at(epoch_ms: int) -> int:
    """Return the smallest id issued at ``epoch_ms``, for time-range scans over ids."""
    return max(epoch_ms - EPOCH_MS, 0) << SEQ_BITS
