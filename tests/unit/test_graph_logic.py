"""Unit tests of the pure social-graph logic."""

from __future__ import annotations

import pytest

from streams.errors import PoisonRecord
from topologies.graph.logic import BACKFILL, PURGE, NoPendingRequest, NotFriends, plan_graph


def test_follow_adds_edge_unhides_and_backfills():
    p = plan_graph("Followed", {"follower_id": "f", "followee_id": "e"}, blocked=False)
    assert p.edges == [("follow", "f", "e")]
    assert p.negatives == [("f", "e", False)] and p.timelines == [(BACKFILL, "f", "e")]


def test_follow_between_blocked_users_or_self_is_ignored():
    assert plan_graph("Followed", {"follower_id": "f", "followee_id": "e"}, blocked=True).edges == []
    assert plan_graph("Followed", {"follower_id": "f", "followee_id": "f"}, blocked=False).edges == []


def test_unfollow_hides_author_and_purges():
    p = plan_graph("Unfollowed", {"follower_id": "f", "followee_id": "e"}, blocked=False)
    assert p.edges == [("unfollow", "f", "e")] and p.negatives == [("f", "e", True)]
    assert p.timelines == [(PURGE, "f", "e")]


def test_block_hides_both_ways():
    p = plan_graph("Blocked", {"blocker_id": "a", "blocked_id": "b"}, blocked=False)
    assert p.edges == [("block", "a", "b")]
    assert set(p.negatives) == {("a", "b", True), ("b", "a", True)}
    assert set(p.timelines) == {(PURGE, "a", "b"), (PURGE, "b", "a")}
    u = plan_graph("Unblocked", {"blocker_id": "a", "blocked_id": "b"}, blocked=True)
    assert u.edges == [("unblock", "a", "b")] and all(not h for _, _, h in u.negatives)


def test_friend_accept_is_mutual_follow_with_backfill_both_ways():
    p = plan_graph("FriendRequestAccepted", {"from_id": "a", "to_id": "b"}, blocked=False, pending=True)
    assert p.edges == [("befriend", "a", "b")]
    assert set(p.timelines) == {(BACKFILL, "a", "b"), (BACKFILL, "b", "a")}
    assert plan_graph("FriendRequestAccepted", {"from_id": "a", "to_id": "b"}, blocked=True, pending=True).edges == []


def test_requests_and_unknown_records():
    assert plan_graph("FriendRequestSent", {"from_id": "a", "to_id": "b"}, blocked=False).edges == [
        ("request_sent", "a", "b")]
    assert plan_graph("FriendRequestDeclined", {"from_id": "a", "to_id": "b"}, blocked=False, pending=True).edges == [
        ("request_cleared", "a", "b")]
    with pytest.raises(PoisonRecord):
        plan_graph("Liked", {}, blocked=False)


@pytest.mark.parametrize("record", ["FriendRequestAccepted", "FriendRequestDeclined"])
@pytest.mark.parametrize("blocked", [False, True])
def test_accept_or_decline_without_a_pending_request_is_refused_with_a_reason(record: str, blocked: bool):
    with pytest.raises(NoPendingRequest, match="no pending friend request from a to b") as err:
        plan_graph(record, {"from_id": "a", "to_id": "b"}, blocked=blocked, pending=False)
    assert isinstance(err.value, PoisonRecord)  # dead-lettered by the worker, never applied


def test_unfollow_of_a_friend_removes_the_follow_edge_only():
    # issue 14 item 8: following and friendship are separate relations
    p = plan_graph("Unfollowed", {"follower_id": "f", "followee_id": "e"}, blocked=False, friends=True)
    assert p.edges == [("unfollow", "f", "e")]
    assert not any(op in ("unfriend", "block") for op, _, _ in p.edges)


def test_unfriend_ends_friendship_and_follows_both_ways():
    p = plan_graph("Unfriended", {"user_id": "a", "friend_id": "b"}, blocked=False, friends=True)
    assert p.edges == [("unfriend", "a", "b")]
    assert set(p.negatives) == {("a", "b", True), ("b", "a", True)}
    assert set(p.timelines) == {(PURGE, "a", "b"), (PURGE, "b", "a")}


def test_unfriend_of_a_non_friend_is_refused_with_a_reason():
    with pytest.raises(NotFriends, match="a and b are not friends") as err:
        plan_graph("Unfriended", {"user_id": "a", "friend_id": "b"}, blocked=False, friends=False)
    assert isinstance(err.value, PoisonRecord)


def test_a_batch_fold_sees_the_effect_of_the_records_before_it():
    """Issue 16: GraphBatch folds a batch in offset order; later records see earlier ones' effect."""
    from topologies.graph.logic import BACKFILL, GraphBatch

    b = GraphBatch(sets={}, followers={"b": 0}, clocks={}, celebrity_threshold=1)
    follow = {"follower_id": "a", "followee_id": "b"}
    assert [j.kind for j in b.apply("Followed", follow, 1).jobs] == [BACKFILL]
    assert b.apply("Blocked", {"blocker_id": "b", "blocked_id": "a"}, 2).jobs
    assert b.apply("Followed", follow, 3).jobs == []  # blocked by the record before it: a no-op
    b.apply("Unblocked", {"blocker_id": "b", "blocked_id": "a"}, 4)
    b.apply("FriendRequestSent", {"from_id": "a", "to_id": "b"}, 5)
    accepted = b.apply("FriendRequestAccepted", {"from_id": "a", "to_id": "b"}, 6)  # pending in-batch
    assert accepted.error is None and len(accepted.jobs) == 2
    assert b.apply("FriendRequestAccepted", {"from_id": "a", "to_id": "b"}, 7).error is not None
    assert b.apply("Followed", follow, 1).stale  # older than the edge's last applied event
    assert b.changed[("fers", "b", "a")] and b.changed[("friends", "a", "b")] and b.followers["b"] == 1
    assert b.rows[("followers", "b", "a")] == 6 and b.rows[("friend_requests", "b", "a")] is None
    assert list(b.counted) == ["a", "b"] and b.negatives[("a", "b")] is False
    c = GraphBatch(sets={}, followers={"b": 1}, clocks={}, celebrity_threshold=1)
    c.apply("Followed", {"follower_id": "x", "followee_id": "b"}, 1)
    assert c.apply("Followed", follow, 2).jobs == []  # b passed the celebrity threshold in this batch
