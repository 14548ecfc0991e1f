"""Unit tests of the read path's pure pieces: cursors, breakers, ranking fallback, paging, threads."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ids import EPOCH_MS, SEQ_BITS
from core.rows import TOP_LEVEL, nest
from models.ranking import EngagementRecencyRanker
from serving.circuit import CLOSED, HALF_OPEN, OPEN, Breaker, BreakerOpen
from serving.feed.cursor import BadCursor, CursorCodec, Position
from serving.feed.pipeline import page_window
from serving.feed.ranker import chronological, order_by_scores, rank_or_fallback
from serving.realtime import Client, parse
from topologies.users.logic import comment_write, profile_write, thread_of

codec = CursorCodec("secret-one")


def pid_at(ms: int, seq: int = 0) -> int:
    return ((ms - EPOCH_MS) << SEQ_BITS) | seq


# -- cursors --------------------------------------------------------------------------------
@given(st.one_of(st.integers(min_value=0, max_value=(1 << 53) - 1), st.text(max_size=40)))
def test_cursor_round_trip(before):
    assert codec.decode("feed:alice", codec.encode("feed:alice", Position(before))) == Position(before)


def test_cursor_of_another_list_or_key_is_refused():
    c = codec.encode("feed:alice", Position(123))
    with pytest.raises(BadCursor, match="another list"):
        codec.decode("feed:bob", c)
    with pytest.raises(BadCursor, match="signature"):
        CursorCodec("secret-two").decode("feed:alice", c)


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "!!!.???", "x" * 600, "e30.AAAA"])
def test_malformed_cursor_is_refused(bad):
    with pytest.raises(BadCursor):
        codec.decode("feed:alice", bad)


def test_any_flipped_character_is_refused():
    c = codec.encode("feed:alice", Position(987654321))
    for i in range(len(c)):
        if c[i] == ".":
            continue
        flipped = c[:i] + ("A" if c[i] != "A" else "B") + c[i + 1:]
        try:
            pos = codec.decode("feed:alice", flipped)
        except BadCursor:
            continue
        # base64 padding bits can absorb a change in the last char: then the value is unchanged
        assert pos == Position(987654321)


# -- breaker --------------------------------------------------------------------------------
def test_breaker_opens_after_threshold_then_half_opens_and_closes():
    now = [0.0]
    b = Breaker("x", failures=2, reset_s=5, clock=lambda: now[0])
    boom = ConnectionError("down")

    def fail():
        raise boom

    for _ in range(2):
        with pytest.raises(ConnectionError):
            b.call(fail)
    assert b.state == OPEN
    with pytest.raises(BreakerOpen):
        b.call(lambda: 1)
    now[0] = 5.0
    assert b.state == HALF_OPEN
    assert b.allow() and not b.allow()  # one probe only
    b.success()
    assert b.state == CLOSED and b.call(lambda: 7) == 7


def test_failed_probe_reopens():
    now = [0.0]
    b = Breaker("x", failures=1, reset_s=1, clock=lambda: now[0])
    b.failure()
    now[0] = 1.5
    assert b.allow()
    b.failure()
    assert b.state == OPEN
    b.release()
    assert b.state == OPEN


# -- ranking --------------------------------------------------------------------------------
def items_at(now_ms: int):
    return [
        {"post_id": pid_at(now_ms - 60_000, 1), "counts": {"likes": 0, "comments": 0, "shares": 0}},
        {"post_id": pid_at(now_ms - 3_600_000, 2), "counts": {"likes": 50, "comments": 10, "shares": 5}},
        {"post_id": pid_at(now_ms - 7_200_000, 3), "counts": {"likes": 0, "comments": 0, "shares": 0}},
    ]


def test_engagement_recency_ranker_prefers_engaged_then_recent():
    now = int(time.time() * 1000)
    items = items_at(now)
    ordered = order_by_scores(items, EngagementRecencyRanker().scores("r", items))
    assert [it["post_id"] for it in ordered] == [items[1]["post_id"], items[0]["post_id"], items[2]["post_id"]]
    old = {"post_id": pid_at(now - 48 * 3_600_000), "counts": {"likes": 50, "comments": 10, "shares": 5}}
    fresh = {"post_id": pid_at(now - 1000), "counts": {}}
    assert order_by_scores([old, fresh], EngagementRecencyRanker().scores("r", [old, fresh]))[0] is fresh


class Raising:
    name = "raising"

    def scores(self, reader, items):
        raise RuntimeError("model exploded")


class Slow:
    name = "slow"

    def scores(self, reader, items):
        time.sleep(0.5)
        return [1.0] * len(items)


class Short:
    name = "short"

    def scores(self, reader, items):
        return [1.0]


@pytest.mark.parametrize("ranker,reason", [(Raising(), "model exploded"), (Slow(), "timed out"),
                                           (Short(), "1 scores for 3")])
def test_ranker_failure_falls_back_to_chronological(ranker, reason):
    items = items_at(int(time.time() * 1000))
    b = Breaker("ranker", failures=2, reset_s=60)
    with ThreadPoolExecutor(2) as pool:
        out = rank_or_fallback(ranker, b, pool, "r", items, timeout_s=0.05)
        assert out.algorithm == "chronological" and reason in out.fallback_reason
        assert out.items == chronological(items)
        rank_or_fallback(ranker, b, pool, "r", items, timeout_s=0.05)
        assert b.state == OPEN
        again = rank_or_fallback(EngagementRecencyRanker(), b, pool, "r", items, timeout_s=1)
        assert again.algorithm == "chronological" and again.fallback_reason == "ranker circuit open"


def test_ranker_success_is_reported_as_ranked():
    items = items_at(int(time.time() * 1000))
    with ThreadPoolExecutor(1) as pool:
        out = rank_or_fallback(EngagementRecencyRanker(), Breaker("r"), pool, "r", items, timeout_s=1)
    assert out.algorithm == "ranked" and out.fallback_reason is None
    assert out.items[0] is items[1]


# -- paging math ----------------------------------------------------------------------------
def posts(*ids):
    return [{"post_id": i} for i in ids]


def test_page_window_cursor_is_last_returned_item():
    assert page_window(posts(9, 8, 7, 6), 3, last_examined=5, exhausted=False) == (posts(9, 8, 7), 7)
    assert page_window(posts(9, 8, 7), 3, last_examined=7, exhausted=True) == (posts(9, 8, 7), 7)


def test_page_window_end_and_filtered_tail():
    assert page_window(posts(9, 8), 3, last_examined=4, exhausted=True) == (posts(9, 8), None)
    # filters dropped many: resume below the last examined candidate, not the last returned
    assert page_window(posts(9), 3, last_examined=2, exhausted=False) == (posts(9), 2)
    assert page_window([], 3, last_examined=None, exhausted=True) == ([], None)


@given(st.lists(st.integers(1, 10_000), unique=True, max_size=60), st.integers(1, 10),
       st.sets(st.integers(1, 10_000)))
def test_paging_visits_every_visible_id_once(ids, limit, hidden):
    """Simulated keyset paging over a filtered list: exactly the visible ids, in order."""
    ordered = sorted(ids, reverse=True)
    seen, before = [], None
    for _ in range(200):
        cand = [i for i in ordered if before is None or i < before][: 2 * limit]
        exhausted = len(cand) < 2 * limit
        visible = [{"post_id": i} for i in cand if i not in hidden]
        page, before = page_window(visible, limit, cand[-1] if cand else None, exhausted)
        seen += [p["post_id"] for p in page]
        if before is None:
            break
    assert seen == [i for i in ordered if i not in hidden]


# -- users topology logic -------------------------------------------------------------------
def test_profile_writes():
    reg = profile_write("UserRegistered", {"user_id": "u", "handle": "h", "display_name": "D", "bio": None,
                                           "avatar_url": None, "occurred_at": 5})
    assert reg.registered and reg.fields == {"handle": "h", "display_name": "D", "bio": None, "avatar_url": None}
    upd = profile_write("ProfileUpdated", {"user_id": "u", "display_name": None, "bio": "b", "occurred_at": 6})
    assert not upd.registered and upd.fields == {"bio": "b"} and upd.at_ms == 6


def test_comment_threads():
    assert thread_of(None, None) == TOP_LEVEL
    assert thread_of(10, TOP_LEVEL) == 10  # reply to a root
    assert thread_of(11, 10) == 10  # reply to a reply stays in the root's thread
    w = comment_write("CommentAdded", {"post_id": 1, "comment_id": 11, "user_id": "u", "text": "t",
                                       "parent_comment_id": 10, "occurred_at": 9}, TOP_LEVEL)
    assert (w.thread, w.parent_id, w.deleted) == (10, 10, False)
    d = comment_write("CommentDeleted", {"post_id": 1, "comment_id": 11, "user_id": "u", "occurred_at": 9}, None, 10)
    assert d.deleted and d.thread == 10 and d.text is None


def test_nest_attaches_replies_in_order_and_flags_more():
    roots = [{"comment_id": 1}, {"comment_id": 5}]
    replies = [{"comment_id": c, "thread": 1} for c in (4, 2, 3)] + [{"comment_id": 6, "thread": 5}]
    out = nest(roots, replies, per_thread=2)
    assert [r["comment_id"] for r in out[0]["replies"]] == [2, 3] and out[0]["more_replies"]
    assert [r["comment_id"] for r in out[1]["replies"]] == [6] and not out[1]["more_replies"]


# -- realtime -------------------------------------------------------------------------------
async def test_slow_client_queue_is_bounded_and_reports_drops():
    c = Client(size=3)
    for i in range(10):
        c.offer({"n": i})
    assert await c.next() == {"type": "overflow", "dropped": 7}
    assert [(await c.next())["n"] for _ in range(3)] == [7, 8, 9]
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(c.next(), 0.05)


def test_parse_tags_fanout_messages():
    assert parse(b'{"post_id": 1, "author_id": "a", "op": "ADD"}')["type"] == "feed"
    assert parse(b'{"type": "notification", "kind": "LIKE"}')["type"] == "notification"
    assert parse(b"not json")["type"] == "unknown"
