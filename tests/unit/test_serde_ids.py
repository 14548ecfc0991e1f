"""Time-sortable 53-bit ids: monotonic, unique across threads, exact as doubles."""

from __future__ import annotations

import threading
import time
from itertools import pairwise

import pytest
import yaml

from core.ids import (
    EPOCH_MS,
    MAX_ID,
    IdGenerator,
    IdNodeLost,
    id_timestamp_ms,
    min_id_at,
    new_id,
    new_post_id,
)
from core.settings import REPO_ROOT, Settings

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


@pytest.mark.parametrize("bits", range(1, 9))
def test_generators_of_different_nodes_never_collide_in_the_same_millisecond(bits: int) -> None:
    clock = lambda: EPOCH_MS / 1000 + 7.0  # frozen: every id below is issued in the same millisecond
    nodes = sorted({0, 1, (1 << bits) // 2, (1 << bits) - 1})
    gens = [IdGenerator(n, bits, clock) for n in nodes]
    assert gens[0].ids_per_ms == 1 << (12 - bits)
    issued = [[g.new_id() for _ in range(g.ids_per_ms)] for g in gens]  # each node's whole millisecond
    flat = [i for ids in issued for i in ids]
    assert len(set(flat)) == len(flat) == len(nodes) * (1 << (12 - bits))
    assert {id_timestamp_ms(i) for i in flat} == {EPOCH_MS + 7000}


def test_a_generator_past_its_lease_deadline_refuses_to_issue_ids() -> None:
    mono = [100.0]
    gen = IdGenerator(3, 6, valid_until=101.0, monotonic=lambda: mono[0])
    gen.new_id()
    mono[0] = 101.0
    with pytest.raises(IdNodeLost):
        gen.new_id()
    gen.hold_until(110.0)  # renewed
    gen.new_id()
    gen.hold_until(0.0)  # lost
    with pytest.raises(IdNodeLost):
        gen.new_id()


def test_node_bits_cover_the_api_autoscaler_and_fixed_nodes_must_fit() -> None:
    docs = [d for d in yaml.safe_load_all((REPO_ROOT / "k8s/base/api.yaml").read_text()) if d]
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    surge = deploy["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    # every pod of a full rollout at the HPA's maximum holds a node, with room for crashed pods' leases
    assert hpa["spec"]["maxReplicas"] + surge <= (1 << Settings().id_node_bits) // 2
    with pytest.raises(ValueError):
        Settings(id_node=64, id_node_bits=6)
    assert Settings(id_node=63, id_node_bits=6).id_node == 63
