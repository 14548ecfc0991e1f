"""Engagement counting logic: dedup, LWW, comment deletes, windows, notifications, property test."""

from __future__ import annotations

import random
from datetime import UTC
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.clock import millis
from core.rows import Counts, PostState
from topologies.engagement.logic import apply, graph_notification, recount, window_of

POST, AUTHOR = 1234567, "author"


def ev(name: str, user: str, ts: int, eid: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    base = {"event_id": eid, "occurred_at": ts, "actor_id": user, "schema_version": 1,
            "post_id": POST, "post_author_id": AUTHOR, "user_id": user}
    return name, {**base, **extra}


def run(log: list[tuple[str, dict[str, Any]]]) -> tuple[PostState, Counts]:
    state, windows = PostState(POST), Counts()
    for name, e in log:
        windows = windows + apply(state, name, e).delta
    return state, windows


def test_like_counts_once_and_unlike_undoes() -> None:
    like = ev("Liked", "u1", 1000, "e1")
    state, _ = run([like, like, ev("Liked", "u1", 1001, "e2")])
    assert state.totals.likes == 1
    state, _ = run([like, ev("Unliked", "u1", 2000, "e3"), like])
    assert state.totals.likes == 0


def test_out_of_order_unlike_then_older_like_stays_unliked() -> None:
    state, _ = run([ev("Unliked", "u1", 2000, "e2"), ev("Liked", "u1", 1000, "e1")])
    assert state.totals.likes == 0


def test_comment_counts_once_and_delete_subtracts_even_if_first() -> None:
    add = ev("CommentAdded", "u1", 1000, "e1", comment_id=9, text="hi", parent_comment_id=None)
    delete = ev("CommentDeleted", "u1", 2000, "e2", comment_id=9)
    assert run([add, add])[0].totals.comments == 1
    assert run([add, delete, delete, add])[0].totals.comments == 0
    assert run([delete, add])[0].totals.comments == 0


def test_reactions_by_kind_and_shares_once_per_user() -> None:
    log = [ev("ReactionAdded", "u1", 1, "a", kind="LOVE"), ev("ReactionAdded", "u2", 2, "b", kind="LOVE"),
           ev("ReactionAdded", "u1", 3, "c", kind="HAHA"), ev("ReactionRemoved", "u2", 4, "d", kind="LOVE"),
           ev("Shared", "u1", 5, "e", comment=None), ev("Shared", "u1", 6, "f", comment="again")]
    totals = run(log)[0].totals
    assert totals.reactions == {"LOVE": 1, "HAHA": 1}
    assert totals.shares == 1


def test_window_deltas_land_in_event_minute() -> None:
    like = ev("Liked", "u1", 125_000, "e1")
    unlike = ev("Unliked", "u1", 185_000, "e2")
    state = PostState(POST)
    first, second = apply(state, *like), apply(state, *unlike)
    assert (first.window_start, first.delta.likes) == (120_000, 1)
    assert (second.window_start, second.delta.likes) == (180_000, -1)
    assert window_of(59_999) == 0


def test_notifications_for_author_reply_and_not_self() -> None:
    state = PostState(POST)
    parent = ev("CommentAdded", "u2", 10, "p", comment_id=1, text="x", parent_comment_id=None)
    reply = ev("CommentAdded", "u3", 20, "r", comment_id=2, text="y", parent_comment_id=1)
    kinds = [(n.kind, n.recipient_id) for n in apply(state, *parent).notifications]
    assert kinds == [("COMMENT", AUTHOR)]
    kinds = sorted((n.kind, n.recipient_id) for n in apply(state, *reply).notifications)
    assert kinds == [("COMMENT", AUTHOR), ("REPLY", "u2")]
    assert apply(state, *ev("Liked", AUTHOR, 30, "s")).notifications == ()
    first = apply(state, *ev("Liked", "u9", 40, "l")).notifications
    again = apply(state, *ev("Liked", "u9", 40, "l")).notifications  # replay re-emits the same id
    assert [n.notification_id for n in first] == [n.notification_id for n in again] != []
    assert apply(state, *ev("Unliked", "u9", 50, "ul")).notifications == ()


def test_graph_notifications() -> None:
    base = {"event_id": "g1", "occurred_at": 5}
    follow = graph_notification("Followed", {**base, "follower_id": "a", "followee_id": "b"})
    assert follow and (follow.kind, follow.recipient_id, follow.actor_id) == ("FOLLOW", "b", "a")
    acc = graph_notification("FriendRequestAccepted", {**base, "from_id": "a", "to_id": "b"})
    assert acc and (acc.kind, acc.recipient_id) == ("FRIEND_ACCEPTED", "a")
    assert graph_notification("Unfollowed", {**base, "follower_id": "a", "followee_id": "b"}) is None


def test_millis_accepts_datetime() -> None:
    from datetime import datetime

    assert millis(datetime(2024, 1, 1, tzinfo=UTC)) == 1_704_067_200_000


USERS = st.sampled_from(["u1", "u2", "u3"])
KIND = st.sampled_from(["LIKE", "LOVE", "WOW"])


@st.composite
def source_event(draw: st.DrawFn, i: int) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(["Liked", "Unliked", "CommentAdded", "CommentDeleted", "Shared",
                                 "ReactionAdded", "ReactionRemoved"]))
    ts = draw(st.integers(0, 5)) * 30_000  # collisions on occurred_at are deliberate
    extra: dict[str, Any] = {}
    if name.startswith("Comment"):
        extra["comment_id"] = draw(st.integers(1, 4))
        if name == "CommentAdded":
            extra.update(text="t", parent_comment_id=draw(st.none() | st.integers(1, 4)))
    if name.startswith("Reaction"):
        extra["kind"] = draw(KIND)
    if name == "Shared":
        extra["comment"] = None
    return ev(name, draw(USERS), ts, f"e{i:03d}", **extra)


@st.composite
def delivered_log(draw: st.DrawFn) -> tuple[list, list]:
    n = draw(st.integers(0, 30))
    source = [draw(source_event(i)) for i in range(n)]
    deliveries = source + draw(st.lists(st.sampled_from(source), max_size=15)) if source else []
    order = draw(st.permutations(deliveries))
    return source, list(order)


@settings(max_examples=400, deadline=None)
@given(delivered_log())
def test_counters_equal_recount_for_any_order_with_repeats(case: tuple[list, list]) -> None:
    source, delivered = case
    state, windows = run(delivered)
    expected = recount(source)
    assert state.totals == expected
    assert windows == expected  # per-minute deltas sum to the totals
    assert min(expected.likes, expected.comments, expected.shares, *expected.reactions.values(), 0) == 0


@settings(max_examples=200, deadline=None)
@given(delivered_log(), st.integers(0, 40), st.integers(0, 40))
def test_crash_and_replay_from_earlier_offset_never_double_counts(case: tuple[list, list], crash: int,
                                                                  rewind: int) -> None:
    source, delivered = case
    crash = min(crash, len(delivered))
    resume = max(0, crash - rewind)  # at-least-once: restart re-reads records after the last commit
    state = PostState(POST)
    for name, e in delivered[:crash] + delivered[resume:]:
        apply(state, name, e)
    assert state.totals == recount(source)


def test_recount_is_order_independent_on_a_big_random_log() -> None:
    rng = random.Random(7)
    log = [ev(rng.choice(["Liked", "Unliked"]), f"u{rng.randrange(50)}", rng.randrange(100), f"e{i}")
           for i in range(2000)]
    shuffled = log[:]
    rng.shuffle(shuffled)
    assert recount(log) == recount(shuffled) == run(shuffled)[0].totals
