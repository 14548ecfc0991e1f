"""Unit tests: graph events naming users who never registered (issue 14 item 6, graph part)."""

from __future__ import annotations

import pytest

from streams.errors import PoisonRecord
from topologies.faust_runtime import SourceRecord
from topologies.graph.app import UserCheck
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
