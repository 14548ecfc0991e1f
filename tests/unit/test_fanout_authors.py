"""Unit tests: fan-out refuses a PostCreated whose author never registered (issue 14 item 5)."""

from __future__ import annotations

from topologies.fanout.app import author_named
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import UserCheck

GRACE = 10_000


def rec(name: str, author: str, at: int) -> SourceRecord:
    return SourceRecord("posts.v1", 0, 0, None, name, {"occurred_at": at, "author_id": author, "post_id": 1}, at)


class Clock:
    def __init__(self, now: int) -> None:
        self.now, self.sleeps = now, 0

    def sleep(self, s: float) -> None:
        self.now += int(s * 1000)
        self.sleeps += 1


def test_only_a_post_creation_needs_its_author_registered():
    assert author_named(rec("PostCreated", "ann", 0)) == ["ann"]
    assert author_named(rec("PostEdited", "ann", 0)) == []  # needs its post created instead
    assert author_named(rec("PostDeleted", "ann", 0)) == []


def test_unregistered_author_refused_after_the_grace_registered_late_within_it_accepted():
    clock = Clock(100_000)
    reg = {"ann": 1_000}
    check = UserCheck(lambda ids: {u: reg[u] for u in ids if u in reg}, GRACE, now_ms=lambda: clock.now,
                      sleep=clock.sleep, named=author_named)

    def late(ids):  # bob's registration shows up after the worker polled a few times
        if clock.sleeps >= 3:
            reg["bob"] = 99_000
        return {u: reg[u] for u in ids if u in reg}
    check.lookup = late
    recs = [rec("PostCreated", "ann", 95_000), rec("PostCreated", "ghost", 95_000),
            rec("PostCreated", "bob", 95_000), rec("PostEdited", "ghost", 95_000)]
    assert check.unknown(recs) == [set(), {"ghost"}, set(), set()]
    assert clock.now <= 95_000 + GRACE + 100  # waited no longer than the grace


def test_an_old_post_by_an_unknown_author_costs_one_lookup():
    clock = Clock(1_000_000)
    check = UserCheck(lambda ids: {}, GRACE, now_ms=lambda: clock.now, sleep=clock.sleep, named=author_named)
    assert check.unknown([rec("PostCreated", "ghost", 1_000)]) == [{"ghost"}]
    assert clock.sleeps == 0
