"""Unit tests of the pure fan-out logic: audiences, hybrid policy, edits, back-fill, merge."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.clock import DAY_MS
from core.feed import ADD, EDIT, REMOVE, Policy, merge_newest, visible_to
from streams.errors import PoisonRecord
from topologies.fanout.logic import (
    NotPostAuthor,
    PostRef,
    UnknownPost,
    check_post_refs,
    plan_backfill,
    plan_delete,
    plan_post,
    plan_purge,
)

NOW = 1_800_000_000_000
POLICY = Policy(celebrity_threshold=3, inactive_days=30, timeline_cap=800, backfill_limit=2)


def readers(plan):
    return {(w.reader_id, w.op) for w in plan.writes}


def test_public_post_reaches_every_active_follower():
    plan = plan_post(PostRef(10, "a", "PUBLIC"), ADD, ["x", "y"], [], {}, NOW, POLICY)
    assert readers(plan) == {("a", ADD), ("x", ADD), ("y", ADD)} and not plan.celebrity
    assert all(w.post_id == 10 and w.author_id == "a" for w in plan.writes)


def test_friends_only_post_reaches_only_friends_among_followers():
    plan = plan_post(PostRef(10, "a", "FRIENDS"), ADD, ["x", "y", "z"], ["y", "q"], {}, NOW, POLICY)
    assert readers(plan) == {("a", ADD), ("y", ADD)}


def test_celebrity_is_not_fanned_out():
    plan = plan_post(PostRef(10, "a"), ADD, ["1", "2", "3", "4"], [], {}, NOW, POLICY)
    assert plan.celebrity and readers(plan) == {("a", ADD)} and plan.inactive == []  # the author only
    at_threshold = plan_post(PostRef(10, "a"), ADD, ["1", "2", "3"], [], {}, NOW, POLICY)
    assert not at_threshold.celebrity and len(at_threshold.writes) == 4


def test_inactive_readers_are_skipped_and_reported():
    seen = {"old": NOW - 31 * DAY_MS, "recent": NOW - 29 * DAY_MS}
    plan = plan_post(PostRef(10, "a"), ADD, ["old", "recent", "never"], [], seen, NOW, POLICY)
    assert readers(plan) == {("a", ADD), ("recent", ADD), ("never", ADD)}
    assert plan.inactive == ["old"]
    # the author always gets their own post, however long ago they were last seen
    assert ("a", ADD) in readers(plan_post(PostRef(10, "a"), ADD, [], [], {"a": 0}, NOW, POLICY))


def test_edit_narrowing_visibility_removes_from_non_friends():
    plan = plan_post(PostRef(10, "a", "FRIENDS"), EDIT, ["x", "y"], ["x"], {}, NOW, POLICY)
    assert readers(plan) == {("a", EDIT), ("x", EDIT), ("y", REMOVE)}


def test_delete_and_purge_remove():
    assert [(w.reader_id, w.op) for w in plan_delete(5, "a", ["x", "x", "y"])] == [
        ("a", REMOVE), ("x", REMOVE), ("y", REMOVE)]
    assert [w.post_id for w in plan_purge("r", "a", [1, 3, 2, 3])] == [3, 2, 1]


def test_backfill_is_bounded_newest_first_and_respects_visibility():
    recent = [(9, "PUBLIC"), (8, "FRIENDS"), (7, "FOLLOWERS"), (6, "PUBLIC")]
    assert [w.post_id for w in plan_backfill("r", "a", recent, follows=True, is_friend=False, limit=2)] == [9, 7]
    assert [w.post_id for w in plan_backfill("r", "a", recent, follows=True, is_friend=True, limit=3)] == [9, 8, 7]


def test_visible_to_matrix():
    assert visible_to("PUBLIC", is_author=False, follows=False, is_friend=False)
    assert not visible_to("FOLLOWERS", is_author=False, follows=False, is_friend=True)
    assert visible_to("FOLLOWERS", is_author=False, follows=True, is_friend=False)
    assert not visible_to("FRIENDS", is_author=False, follows=True, is_friend=False)
    assert visible_to("FRIENDS", is_author=True, follows=False, is_friend=False)


@given(st.lists(st.lists(st.integers(0, 200), max_size=30), max_size=4),
       st.one_of(st.none(), st.integers(0, 200)), st.integers(1, 50))
def test_merge_newest_equals_sorted_distinct_filtered(lists, before, limit):
    srcs = [sorted(x, reverse=True) for x in lists]
    expected = sorted({i for x in srcs for i in x if before is None or i < before}, reverse=True)[:limit]
    assert merge_newest(*srcs, before=before, limit=limit) == expected


def _ev(name: str, pid: int, author: str = "a") -> tuple[str, dict]:
    return name, {"post_id": pid, "author_id": author}


def test_edit_or_delete_of_an_unknown_post_is_refused_with_a_reason():
    # issue 14 item 6: an edit for an unknown post id must never create a readable post
    edit, delete = check_post_refs([_ev("PostEdited", 7), _ev("PostDeleted", 8)], {})
    assert isinstance(edit, UnknownPost) and isinstance(edit, PoisonRecord)
    assert "no post 7" in str(edit) and isinstance(delete, UnknownPost) and "no post 8" in str(delete)


def test_create_then_edit_then_delete_in_one_batch_are_applied_in_order():
    assert check_post_refs([_ev("PostCreated", 1), _ev("PostEdited", 1), _ev("PostDeleted", 1)], {}) == [
        None, None, None]
    assert check_post_refs([_ev("PostEdited", 2), _ev("PostDeleted", 2)], {2: ("a", False)}) == [None, None]


def test_edit_of_a_deleted_post_or_of_another_authors_post_is_refused():
    edit_deleted, again = check_post_refs([_ev("PostEdited", 3), _ev("PostDeleted", 3)], {3: ("a", True)})
    assert isinstance(edit_deleted, UnknownPost) and "deleted" in str(edit_deleted)
    assert again is None  # a redelivered delete is a no-op, not a dead letter
    _, edit_after = check_post_refs([_ev("PostDeleted", 4), _ev("PostEdited", 4)], {4: ("a", False)})
    assert isinstance(edit_after, UnknownPost)
    forged, = check_post_refs([_ev("PostEdited", 5, "mallory")], {5: ("a", False)})
    assert isinstance(forged, NotPostAuthor) and "is by a, not mallory" in str(forged)


def test_a_redelivered_event_older_than_an_applied_one_is_superseded() -> None:
    from topologies.fanout.logic import superseded

    # post 1: an edit (v20) was applied before the batch; post 2: nothing applied yet
    applied = {1: 20, 2: 0}
    events = [(1, 10), (1, 20), (2, 5), (2, 7), (2, 5), (1, 30), (1, 20)]
    assert superseded(events, applied) == [True, False, False, False, True, False, True]
    assert superseded([], {}) == []
