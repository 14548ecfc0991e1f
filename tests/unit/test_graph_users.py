"""Unit tests: graph events naming users who never registered (issue 14 item 6, graph part)."""

from __future__ import annotations

import pytest

from streams.errors import PoisonRecord
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import UserCheck, users_caught_up
from topologies.graph.logic import UnknownUser, named_users, plan_graph

GRACE = 10_000


def rec(name: str, a: str, b: str, at: int) -> SourceRecord:
    fields = dict(zip(("follower_id", "followee_id") if "ollow" in name else ("from_id", "to_id"), (a, b)))
    return SourceRecord("graph.v1", 0, 0, None, name, {"occurred_at": at, **fields}, at)


class Clock:
    def __init__(self, now: int) -> None:
        self.now, self.sleeps = now, 0

    def sleep(self, s: float) -> None:
        self.now += int(s * 1000)
        self.sleeps += 1


def test_an_event_naming_an_unregistered_user_is_refused_with_a_reason():
    with pytest.raises(UnknownUser, match="Followed: user ghost never registered") as err:
        plan_graph("Followed", {"follower_id": "ann", "followee_id": "ghost"}, blocked=False, unknown={"ghost"})
    assert isinstance(err.value, PoisonRecord)
    ok = plan_graph("Followed", {"follower_id": "ann", "followee_id": "bob"}, blocked=False, unknown={"ghost"})
    assert ok.edges == [("follow", "ann", "bob")]


def test_every_graph_event_names_its_two_users():
    assert named_users("Blocked", {"blocker_id": "a", "blocked_id": "b"}) == ("a", "b")
    assert named_users("Unfriended", {"user_id": "a", "friend_id": "b"}) == ("a", "b")
    assert named_users("Liked", {"user_id": "a"}) == ()


def test_registered_users_pass_without_waiting_and_are_remembered():
    calls: list[list[str]] = []
    clock = Clock(100_000)

    def lookup(ids):
        calls.append(ids)
        return {i: 1 for i in ids}

    check = UserCheck(lookup, GRACE, now_ms=lambda: clock.now, sleep=clock.sleep)
    assert check.unknown([rec("Followed", "a", "b", 99_000)]) == [set()]
    assert check.unknown([rec("Followed", "b", "a", 99_500)]) == [set()]
    assert calls == [["a", "b"]] and clock.sleeps == 0


def test_an_old_event_naming_a_user_never_registered_is_refused_without_waiting():
    clock = Clock(1_000_000)
    check = UserCheck(lambda ids: {"a": 1} if "a" in ids else {}, GRACE, now_ms=lambda: clock.now, sleep=clock.sleep)
    assert check.unknown([rec("Followed", "a", "ghost", 1_000)]) == [{"ghost"}]
    assert clock.sleeps == 0


def test_register_then_follow_within_ms_the_follow_waits_for_the_users_view():
    """The race: the sign-up is on users.v1, not co-partitioned; the users view lags 300 ms."""
    clock = Clock(50_000)
    check = UserCheck(lambda ids: {i: 50_000 for i in ids if i == "a" or (i == "new" and clock.now >= 50_300)},
                      GRACE, now_ms=lambda: clock.now, sleep=clock.sleep)
    assert check.unknown([rec("Followed", "a", "new", 50_001), rec("Followed", "a", "a2", 49_000)]) == [
        set(), {"a2"}]  # a2 never registers: refused once the wait ended
    assert 50_300 <= clock.now <= 50_000 + GRACE


def test_the_wait_is_bounded_by_the_grace_and_a_late_registration_does_not_count():
    clock = Clock(50_000)
    registered_at = 50_000 + GRACE + 5  # signed up after the follow's grace
    check = UserCheck(lambda ids: {i: registered_at for i in ids if clock.now >= registered_at}, GRACE,
                      now_ms=lambda: clock.now, sleep=clock.sleep)
    assert check.unknown([rec("Followed", "late", "late", 50_000)]) == [{"late"}]
    assert clock.now <= 50_000 + GRACE + 50
    clock.now += 1_000  # now registered, but too late for that event (the replay gives the same answer)
    assert check.unknown([rec("Followed", "late", "late", 50_000)]) == [{"late"}]


class Progress:
    """users.v1's end offsets and the users topology's applied marks, as a test drives them."""

    def __init__(self, ends: dict, applied: dict) -> None:
        self._ends, self._applied, self.snapshots = ends, applied, 0

    def ends(self) -> dict:
        self.snapshots += 1
        return dict(self._ends)

    def applied(self) -> dict:
        return dict(self._applied)


def test_caught_up_once_every_partition_applied_its_last_record_below_the_end():
    ends = {("users.v1", 0): 10, ("users.v1", 1): 0}  # partition 1 is empty
    assert not users_caught_up(ends, {})
    assert not users_caught_up(ends, {("users.v1", 0): 8})
    assert users_caught_up(ends, {("users.v1", 0): 9})
    assert users_caught_up(ends, {("users.v1", 0): 12, ("users.v1", 1): 3})
    assert users_caught_up({}, {})


def test_with_progress_a_lagging_users_topology_delays_the_refusal_past_the_grace():
    """Cold start: the users topology lags far beyond the grace; the follow waits, then applies."""
    clock = Clock(50_000)
    prog = Progress({("users.v1", 0): 100}, {("users.v1", 0): 40})
    registered_at = {"a": 1, "new": 50_000}

    def lookup(ids):  # "new" is stored only once the users topology applied offset 99
        visible = {"a"} | ({"new"} if prog._applied[("users.v1", 0)] >= 99 else set())
        if clock.now >= 50_000 + 3 * GRACE:
            prog._applied[("users.v1", 0)] = 99  # it came back 30 s later
        return {i: registered_at[i] for i in ids if i in visible}

    check = UserCheck(lookup, GRACE, now_ms=lambda: clock.now, sleep=clock.sleep, progress=prog)
    assert check.unknown([rec("Followed", "a", "new", 50_001)]) == [set()]
    assert clock.now >= 50_000 + 3 * GRACE and prog.snapshots == 1


def test_with_progress_never_registered_is_refused_once_the_users_topology_passed_the_snapshot():
    clock = Clock(50_000)
    prog = Progress({("users.v1", 0): 100, ("users.v1", 1): 7}, {("users.v1", 0): 99, ("users.v1", 1): 2})

    def lookup(ids):
        if clock.now >= 50_000 + GRACE + 500:
            prog._applied[("users.v1", 1)] = 6
        return {i: 1 for i in ids if i == "a"}

    check = UserCheck(lookup, GRACE, now_ms=lambda: clock.now, sleep=clock.sleep, progress=prog)
    assert check.unknown([rec("Followed", "a", "ghost", 50_000)]) == [{"ghost"}]
    assert clock.now >= 50_000 + GRACE + 500  # not before the users topology proved it


def test_with_progress_the_end_offsets_are_snapshotted_only_after_the_grace():
    clock = Clock(50_000)
    seen: list[int] = []

    class Late(Progress):
        def ends(self) -> dict:
            seen.append(clock.now)
            return super().ends()

    check = UserCheck(lambda ids: {i: 1 for i in ids if i == "a"}, GRACE, now_ms=lambda: clock.now,
                      sleep=clock.sleep, progress=Late({("users.v1", 0): 5}, {("users.v1", 0): 4}))
    assert check.unknown([rec("Followed", "a", "ghost", 49_000)]) == [{"ghost"}]
    assert seen and seen[0] >= 49_000 + GRACE  # max(now, occurred_at + grace)
