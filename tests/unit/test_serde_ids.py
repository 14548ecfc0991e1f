"""Time-sortable 53-bit ids: monotonic, unique across threads, exact as doubles."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest

from core.ids import EPOCH_MS, MAX_ID, IdGenerator, id_timestamp_ms, min_id_at, new_id, new_post_id

pytestmark = pytest.mark.unit


def test_ids_are_strictly_increasing_and_fit_in_53_bits() -> None:
    ids = [new_post_id() for _ in range(20_000)]
    assert all(a < b for a, b in pairwise(ids))
    assert all(0 < i <= MAX_ID and float(i) == i for i in ids)


def test_id_carries_its_timestamp() -> None:
    before = int(time.time() * 1000)
    value = new_id()
    after = int(time.time() * 1000)
    assert before <= id_timestamp_ms(value) <= after
    assert min_id_at(id_timestamp_ms(value)) <= value < min_id_at(id_timestamp_ms(value) + 1)


def test_later_ids_sort_after_earlier_ones_across_generators() -> None:
    clock = [EPOCH_MS / 1000 + 100.0]
    early = IdGenerator(clock=lambda: clock[0]).new_id()
    clock[0] += 0.001
    late = IdGenerator(clock=lambda: clock[0]).new_id()
    assert late > early


def test_unique_across_threads() -> None:
    gen = IdGenerator()
    out: list[list[int]] = [[] for _ in range(8)]

    def work(bucket: list[int]) -> None:
        bucket.extend(gen.new_id() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(b,)) for b in out]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for b in out for i in b]
    assert len(set(flat)) == len(flat)
    assert all(a < b for bucket in out for a, b in pairwise(bucket))


def test_sequence_overflow_waits_for_next_millisecond_and_clock_going_back_is_safe() -> None:
    now = [EPOCH_MS / 1000 + 5.0]

    def clock() -> float:
        return now[0]

    gen = IdGenerator(clock=clock)
    first = [gen.new_id() for _ in range(4096)]
    assert len({id_timestamp_ms(i) for i in first}) == 1
    threading.Timer(0.05, lambda: now.__setitem__(0, now[0] + 0.002)).start()
    assert id_timestamp_ms(gen.new_id()) > id_timestamp_ms(first[-1])
    now[0] -= 10  # NTP steps the clock back
    assert gen.new_id() > first[-1]


def test_node_bits_keep_writers_apart() -> None:
    clock = lambda: EPOCH_MS / 1000 + 1.0
    a, b = IdGenerator(0, 2, clock), IdGenerator(1, 2, clock)
    assert {a.new_id() for _ in range(100)}.isdisjoint({b.new_id() for _ in range(100)})
    with pytest.raises(ValueError):
        IdGenerator(4, 2)
