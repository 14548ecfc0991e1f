"""Time-sortable 53-bit ids: ``(ms since 2024-01-01 UTC << 12) | seq``, exact as a double and in JS.

``seq`` is ``node << (12 - node_bits) | counter``: a process that issues ids into a shared space
(the write API: post and comment ids are Cassandra primary keys) must own a node number no other
live process has, given by :func:`configure` (``stores.idnodes.claim`` leases one in Redis or takes
``FEEDSTREAM_ID_NODE``). With ``node_bits`` = 6 (the default setting) that is 64 nodes of 64 ids
per millisecond each; 8 bits, 256 nodes of 16. The unconfigured process-wide generator (node 0 of
0 bits) is for tests and tools that never write ids into the shared space.

A leased node is valid only until a deadline (``valid_until``, on the ``monotonic`` clock) that the
lease holder moves forward on each renewal; past it the generator raises :class:`IdNodeLost`
instead of issuing ids another process may be issuing too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SEQ_BITS = 12
MAX_ID = (1 << 53) - 1


MAX_NODE_BITS = 8


class IdNodeLost(RuntimeError):
    """This process's node lease ran out (not renewed in time): it must not issue ids as that node."""


class IdGenerator:
    """Thread-safe, strictly increasing id source; ``node_bits`` of the 12 sequence bits name the node."""

    def __init__(self, node_id: int = 0, node_bits: int = 0, clock=time.time, *,
                 valid_until: float | None = None, monotonic: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= node_bits <= MAX_NODE_BITS or not 0 <= node_id < (1 << node_bits):
            raise ValueError(f"node_id {node_id} does not fit in node_bits={node_bits} (max {MAX_NODE_BITS} bits)")
        self.node_id, self.node_bits = node_id, node_bits
        self._counter_bits = SEQ_BITS - node_bits
        self._node = node_id << self._counter_bits
        self._clock = clock
        self._monotonic = monotonic
        self._valid_until = valid_until
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    @property
    def ids_per_ms(self) -> int:
        """How many ids this generator can issue per millisecond."""
        return 1 << self._counter_bits

    def hold_until(self, deadline: float | None) -> None:
        """Allow ids until ``deadline`` on the ``monotonic`` clock (None: forever; a past time: never)."""
        self._valid_until = deadline

    def new_id(self) -> int:
        """Return the next id; waits for the next millisecond if this one's sequence is used up."""
        deadline = self._valid_until
        if deadline is not None and self._monotonic() >= deadline:
            raise IdNodeLost(f"the lease on id node {self.node_id} expired; refusing to issue ids as that node")
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


def configure(node_id: int, node_bits: int, *, valid_until: float | None = None) -> IdGenerator:
    """Give this process a node number, so several writers never issue the same id; return its generator."""
    global _default
    _default = IdGenerator(node_id, node_bits, valid_until=valid_until)
    return _default


def current() -> IdGenerator:
    """The process-wide generator."""
    return _default


def reset(expected: IdGenerator | None = None) -> None:
    """Back to the unconfigured generator (only if the current one is ``expected``, when given)."""
    global _default
    if expected is None or _default is expected:
        _default = IdGenerator()


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
