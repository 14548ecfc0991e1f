"""Last writer wins per edge in the graph topology (re-delivered events; issue 13/14)."""

from __future__ import annotations

from topologies.graph.logic import edge_clock, edge_key, edge_version, is_stale


def _applied(events: list[tuple[str, dict[str, str], int]]) -> list[str]:
    """Run events through the clock rule as the worker does; return the names of those applied."""
    clocks: dict[str, int] = {}
    out = []
    for name, v, at in events:
        guards, stamps = edge_clock(name, v)
        version = edge_version(name, at)
        if is_stale(version, guards, clocks):
            continue
        out.append(name)
        for e in stamps:
            clocks[e] = max(clocks.get(e, -1), version)
    return out


F = {"follower_id": "a", "followee_id": "b"}
R = {"from_id": "a", "to_id": "b"}
B = {"blocker_id": "a", "blocked_id": "b"}


def test_a_resent_follow_after_the_unfollow_is_ignored_and_its_redelivery_equal_is_applied():
    assert _applied([("Followed", F, 1), ("Unfollowed", F, 2), ("Followed", F, 1)]) == ["Followed", "Unfollowed"]
    assert _applied([("Followed", F, 1), ("Followed", F, 1)]) == ["Followed", "Followed"]  # idempotent
    assert _applied([("Unfollowed", F, 2), ("Followed", F, 3)]) == ["Unfollowed", "Followed"]


def test_same_millisecond_ties_go_to_the_restrictive_or_later_step():
    assert _applied([("Unfollowed", F, 5), ("Followed", F, 5)]) == ["Unfollowed"]
    assert _applied([("Blocked", B, 5), ("Unblocked", B, 5)]) == ["Blocked"]
    assert _applied([("FriendRequestSent", R, 5), ("FriendRequestAccepted", R, 5)]) == [
        "FriendRequestSent", "FriendRequestAccepted"]


def test_block_and_unfriend_guard_the_follows_and_requests_they_end():
    resent = [("Followed", F, 1), ("Blocked", B, 2), ("Unblocked", B, 3), ("Followed", F, 1),
              ("Blocked", B, 2), ("FriendRequestSent", R, 1)]
    assert _applied(resent) == ["Followed", "Blocked", "Unblocked"]
    friends = [("FriendRequestSent", R, 1), ("FriendRequestAccepted", R, 2),
               ("Unfriended", {"user_id": "b", "friend_id": "a"}, 3),
               ("FriendRequestSent", R, 1), ("FriendRequestAccepted", R, 2), ("Followed", F, 2)]
    assert _applied(friends) == ["FriendRequestSent", "FriendRequestAccepted", "Unfriended"]


def test_friend_edges_are_symmetric_and_others_directed():
    assert edge_key("friend", "b", "a") == edge_key("friend", "a", "b")
    assert edge_key("follow", "b", "a") != edge_key("follow", "a", "b")


def test_a_follow_or_request_ignored_while_blocked_stays_ignored_when_redelivered_after_the_unblock():
    """Issue 16: the pair's block edges guard what a block makes a no-op; only a newer one applies."""
    back = {"blocker_id": "b", "blocked_id": "a"}
    log = [("Blocked", back, 1), ("Followed", F, 2), ("FriendRequestSent", R, 2), ("Unblocked", back, 3)]
    assert _applied(log + [("Followed", F, 2), ("FriendRequestSent", R, 2), ("Followed", F, 4)]) == [
        "Blocked", "Followed", "FriendRequestSent", "Unblocked", "Followed"]
    assert edge_clock("Followed", F)[1] == [edge_key("follow", "a", "b")]  # never stamps the blocks
