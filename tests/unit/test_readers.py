"""Unit tests of the read side's readers: guards and breakers, Redis-first fallback, visibility, the
feed window's engine choice, item hydration and freshness -- on fake engines, no servers."""

from __future__ import annotations

from typing import Any

import pytest
import redis as _redis

from serving.circuit import CLOSED, HALF_OPEN, OPEN, Breaker
from serving.feed.pipeline import Path, read_window, window
from serving.readers.base import (
    REDIS_ERRORS,
    Down,
    Fallback,
    Forbidden,
    Guard,
    Partial,
    Unavailable,
)
from serving.readers.freshness import Freshness, NoFreshness, blank
from serving.readers.graph import Graph, Relation
from serving.readers.items import CassandraItems, Items
from serving.readers.visibility import Visibility

pytestmark = pytest.mark.unit


# -- guard ----------------------------------------------------------------------------------
class DeadRedis:
    def pipeline(self, transaction: bool = False) -> Any:
        raise _redis.ConnectionError("refused")


def test_guard_turns_down_errors_into_down_and_opens_its_breaker():
    now = [0.0]
    breaker = Breaker("redis", failures=1, reset_s=2.0, clock=lambda: now[0])
    connects = []
    guard = Guard("redis", lambda: connects.append(1) or DeadRedis(), breaker, REDIS_ERRORS)
    with pytest.raises(Down, match="redis unavailable"), guard.open() as r:
        r.pipeline()
    assert breaker.state == OPEN
    with pytest.raises(Down, match="circuit open"):  # refused at once, the engine is not touched
        with guard.open():
            pass
    assert len(connects) == 1
    now[0] = 2.0
    with guard.open():  # the half-open probe succeeds and closes the breaker
        pass
    assert breaker.state == CLOSED


def test_guard_gives_back_the_probe_on_other_errors():
    now = [0.0]
    breaker = Breaker("redis", failures=1, reset_s=1.0, clock=lambda: now[0])
    breaker.failure()
    now[0] = 1.0
    guard = Guard("redis", lambda: object(), breaker, REDIS_ERRORS)
    with pytest.raises(KeyError), guard.open():
        raise KeyError("bug, not an outage")
    assert breaker.state == HALF_OPEN and breaker.allow()  # probe released, not counted


# -- fallback -------------------------------------------------------------------------------
class Engine:
    def __init__(self, source: str, answer: Any = None, down: bool = False) -> None:
        self.source, self.answer, self.down, self.calls = source, answer, down, 0

    def get(self) -> Any:
        self.calls += 1
        if self.down:
            raise Down(f"{self.source} down")
        return self.answer


def test_fallback_prefers_redis_then_cassandra_then_unavailable():
    red, cas = Engine("redis", 1), Engine("cassandra", 2)
    served = Fallback(red, cas).read(lambda e: e.get())
    assert (served.value, served.source, served.degraded) == (1, "redis", False) and cas.calls == 0
    red.down = True
    served = Fallback(red, cas).read(lambda e: e.get())
    assert (served.value, served.source, served.degraded) == (2, "cassandra", True)
    cas.down = True
    with pytest.raises(Unavailable, match="nope"):
        Fallback(red, cas, "nope").read(lambda e: e.get())


# -- graph and visibility -------------------------------------------------------------------
class FakeGraph:
    """Graph facts of one engine: follows/friends/blocks as sets of (viewer, author)."""

    def __init__(self, source: str, follows=(), friends=(), blocks=(), hidden=(), down: bool = False) -> None:
        self.source, self.down = source, down
        self.follows, self.friends, self.blocks, self.hidden = set(follows), set(friends), set(blocks), set(hidden)

    def _check(self) -> None:
        if self.down:
            raise Down(f"{self.source} down")

    def relation(self, viewer: str, author: str) -> Relation:
        self._check()
        return Relation((viewer, author) in self.blocks or (author, viewer) in self.blocks,
                        (viewer, author) in self.follows, (viewer, author) in self.friends)

    def follows_and_friends(self, viewer: str, authors: list[str]) -> dict[str, tuple[bool, bool]]:
        self._check()
        return {a: ((viewer, a) in self.follows, (viewer, a) in self.friends) for a in authors}

    def unhidden(self, viewer: str, posts: list[dict]) -> list[dict]:
        self._check()
        return [p for p in posts if not p.get("deleted") and (viewer, p["author_id"]) not in self.hidden]

    def is_deleted(self, post_id: int) -> bool:
        self._check()
        return False

    moderated: dict[int, dict] = {}  # noqa: RUF012  (post id -> the moderation part in force)

    def moderation(self, post_id: int) -> dict | None:
        self._check()
        return self.moderated.get(post_id)

    def moderated_ids(self, post_ids: list[int], comments: bool = False) -> set[int]:
        self._check()
        return set(post_ids) & set(self.moderated)

    def counts(self, user: str) -> dict[str, int] | None:
        self._check()
        return {"followers": 7, "following": 1, "friends": 0}


def post(pid: int, author: str, vis: str = "PUBLIC", deleted: bool = False) -> dict[str, Any]:
    return {"post_id": pid, "author_id": author, "visibility": vis, "deleted": deleted}


def test_hot_filter_applies_hidden_authors_and_visibility():
    red = FakeGraph("redis", follows={("v", "a")}, friends={("v", "b")}, hidden={("v", "h")})
    vis = Visibility(Graph(red, FakeGraph("cassandra")))  # type: ignore[arg-type]
    posts = [post(9, "a", "FOLLOWERS"), post(8, "a", "FRIENDS"), post(7, "b", "FRIENDS"), post(6, "c", "FOLLOWERS"),
             post(5, "h"), post(4, "c", deleted=True), post(3, "v", "FRIENDS"), post(2, "c")]
    assert [p["post_id"] for p in vis.filter_hot("v", posts)] == [9, 7, 3, 2]
    assert [p["post_id"] for p in vis.filter_live(posts)] == [9, 8, 7, 6, 5, 3, 2]


def test_may_view_uses_redis_facts_then_cassandra_edges():
    red = FakeGraph("redis", follows={("v", "a")}, blocks={("a", "v")})
    cas = FakeGraph("cassandra", follows={("v", "a")}, blocks={("a", "v")})
    vis = Visibility(Graph(red, cas))  # type: ignore[arg-type]
    p = post(1, "a", "FOLLOWERS")
    assert vis.may_view("v", p) is False  # blocked in Redis
    red.blocks.clear()
    assert vis.may_view("v", p) is True
    red.down = True
    assert vis.may_view("v", p) is False  # Cassandra: blocked
    cas.blocks.clear()
    assert vis.may_view("v", p) is True
    assert vis.may_view("a", p) is True and vis.may_view("a", post(2, "a", deleted=True)) is False
    cas.down = True
    assert vis.may_view("a", p) is True  # the author needs no facts
    with pytest.raises(Unavailable, match="visibility"):
        vis.may_view("v", p)


def test_a_post_hidden_by_moderation_is_refused_to_others_but_not_its_author():
    red = FakeGraph("redis", follows={("v", "a")})
    red.moderated = {1: {"decision": "LIMIT", "reasons": ["offensive"]}}
    vis = Visibility(Graph(red, FakeGraph("cassandra", follows={("v", "a")})))  # type: ignore[arg-type]
    assert vis.may_view("v", post(1, "a")) is False
    assert vis.may_view("a", post(1, "a")) is True
    assert vis.may_view("v", post(2, "a")) is True
    assert [p["post_id"] for p in vis.without_moderated("v", [post(1, "a"), post(2, "a")])] == [2]
    assert [p["post_id"] for p in vis.without_moderated("a", [post(1, "a"), post(2, "a")])] == [1, 2]


def test_with_redis_down_moderation_comes_from_cassandras_durable_copy_never_unfiltered():
    # issue 17: the Redis-down read path must hide what moderation hid, for everyone but the author
    red = FakeGraph("redis", down=True)
    cas = FakeGraph("cassandra", follows={("v", "a")})
    cas.moderated = {1: {"decision": "REMOVE", "by": "mod1", "reason": "spam"}}
    vis = Visibility(Graph(red, cas))  # type: ignore[arg-type]
    assert vis.may_view("v", post(1, "a")) is False
    assert vis.may_view("a", post(1, "a")) is True
    assert vis.may_view("v", post(2, "a")) is True
    assert vis.graph.moderation(1) == cas.moderated[1]
    feed = [post(3, "v"), post(2, "a"), post(1, "a"), post(0, "a", deleted=True)]
    assert [p["post_id"] for p in vis.filter_cold("v", feed)] == [3, 2]  # the Cassandra feed's filter
    assert [p["post_id"] for p in vis.filter_cold("a", feed)] == [3, 2, 1]
    assert [p["post_id"] for p in vis.without_moderated("v", feed[:3])] == [3, 2]
    cas.down = True  # neither engine can say: unknown, never "not hidden"
    with pytest.raises(Unavailable):
        vis.without_moderated("v", feed[:3])
    with pytest.raises(Down):
        vis.filter_cold("v", feed)
    assert vis.without_moderated("a", [post(1, "a")]) == [post(1, "a")]  # the author's own need no facts
    red.down = False
    red.moderated = {}
    assert vis.may_view("v", post(1, "a")) is True  # Redis up: its state rules, Cassandra is not read


def test_a_friend_who_unfollowed_may_open_a_friends_post_but_not_see_it_in_the_feed():
    # issue 14 item 8: the unfollow hid the author from v's feed; the friendship remains
    red = FakeGraph("redis", friends={("v", "a")}, hidden={("v", "a")})
    vis = Visibility(Graph(red, FakeGraph("cassandra")))  # type: ignore[arg-type]
    p = post(1, "a", "FRIENDS")
    assert vis.may_view("v", p) is True
    assert vis.filter_hot("v", [p]) == []
    assert vis.may_view("v", post(2, "a", "FOLLOWERS")) is False


def test_author_rule_forbids_blocked_and_filters_visibilities():
    red = FakeGraph("redis", friends={("v", "a")}, blocks={("v", "x")})
    vis = Visibility(Graph(red, FakeGraph("cassandra")))  # type: ignore[arg-type]
    rule = vis.author_rule("v", "a")
    assert [rule(x) for x in ("PUBLIC", "FOLLOWERS", "FRIENDS")] == [True, False, True]
    own = vis.author_rule("a", "a")
    assert all(own(x) for x in ("PUBLIC", "FOLLOWERS", "FRIENDS"))
    with pytest.raises(Forbidden, match="x is not visible to v"):
        vis.author_rule("v", "x")
    red.down = True
    with pytest.raises(Unavailable):
        Visibility(Graph(red, FakeGraph("cassandra", down=True))).author_rule("v", "a")  # type: ignore[arg-type]


def test_counts_fall_back_and_default_to_zeros():
    red, cas = FakeGraph("redis"), FakeGraph("cassandra")
    g = Graph(red, cas)  # type: ignore[arg-type]
    assert g.counts("u")["followers"] == 7
    red.down = cas.down = True
    assert g.counts("u") == {"followers": 0, "following": 0, "friends": 0}


# -- the feed window ------------------------------------------------------------------------
class FakeTimeline:
    def __init__(self, source: str, ids: list[int], notes: list[str] | None = None, complete: bool = True,
                 fail_after: int | None = None) -> None:
        self.source, self.ids, self.notes, self.complete, self.fail_after = source, ids, notes or [], complete, fail_after
        self.calls = 0

    def prepare(self, reader: str) -> Partial[list[str]]:
        return Partial(self.notes, not self.notes)

    def candidates(self, reader: str, before: int | None, want: int) -> Partial[list[int]]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise Down(f"{self.source} down")
        return Partial([i for i in self.ids if before is None or i < before][:want], self.complete)


class FakePosts:
    def __init__(self, source: str, posts: dict[int, dict], complete: bool = True) -> None:
        self.source, self.store, self.complete = source, posts, complete

    def posts(self, ids: list[int]) -> Partial[dict[int, dict]]:
        return Partial({i: self.store[i] for i in ids if i in self.store}, self.complete)


def keep_even(_reader: str, posts: list[dict]) -> list[dict]:
    return [p for p in posts if p["post_id"] % 2 == 0]


def test_window_refills_past_filtered_candidates_and_pages_by_keyset():
    ids = list(range(40, 0, -1))
    path = Path(FakeTimeline("redis", ids), FakePosts("redis", {i: post(i, "a") for i in ids}), keep_even)
    w = read_window(path, "v", None, 3)
    assert [p["post_id"] for p in w.posts] == [40, 38, 36] and w.next_before == 36 and w.complete
    w = read_window(path, "v", 6, 3)
    assert [p["post_id"] for p in w.posts] == [4, 2] and w.next_before is None


def test_window_incomplete_when_a_source_could_not_answer_even_without_candidates():
    path = Path(FakeTimeline("redis", [], complete=False), FakePosts("redis", {}), keep_even)
    w = read_window(path, "v", None, 3)
    assert w.posts == [] and w.next_before is None and not w.complete


class FakeReaders:
    def __init__(self, redis_tl: FakeTimeline, cass_tl: FakeTimeline, store: dict[int, dict]) -> None:
        self.redis_timeline, self.cassandra_timeline = redis_tl, cass_tl

        class _Posts:
            redis, cassandra = FakePosts("redis", store), FakePosts("cassandra", store)

        class _Vis:
            filter_hot = staticmethod(keep_even)
            filter_live = staticmethod(Visibility.filter_live)
            filter_cold = staticmethod(lambda _viewer, posts: Visibility.filter_live(posts))

        self.posts, self.visibility = _Posts, _Vis


def test_redis_down_mid_window_rereads_the_whole_window_from_cassandra():
    ids = list(range(100, 0, -1))
    store = {i: post(i, "a") for i in ids}
    redis_tl = FakeTimeline("redis", ids, fail_after=1)  # the refill (2nd candidates read) fails
    rd = FakeReaders(redis_tl, FakeTimeline("cassandra", ids), store)
    w, notes = window(rd, "v", None, 20)  # type: ignore[arg-type]
    assert redis_tl.calls == 2 and w.source == "cassandra" and notes == ["redis unavailable: served from cassandra"]
    assert [p["post_id"] for p in w.posts] == ids[:20] and w.next_before == 81 and w.complete
    rd = FakeReaders(FakeTimeline("redis", ids, notes=["cassandra unavailable: x"]), FakeTimeline("cassandra", ids), store)
    w, notes = window(rd, "v", None, 2)  # type: ignore[arg-type]
    assert w.source == "redis" and notes == [] and w.notes == ["cassandra unavailable: x"] and not w.complete
    rd = FakeReaders(FakeTimeline("redis", ids, fail_after=0), FakeTimeline("cassandra", ids, fail_after=0), store)
    with pytest.raises(Unavailable, match="both unavailable"):
        window(rd, "v", None, 2)  # type: ignore[arg-type]


# -- items and freshness --------------------------------------------------------------------
class DownRedisItems:
    source = "redis"

    def items(self, posts: list[dict], reader: str | None) -> Partial[list[dict]]:
        raise Down("redis down")


class FakeProfiles:
    def __init__(self, down: bool = False) -> None:
        self.down = down

    def profiles(self, ids: list[str]) -> Partial[dict[str, dict]]:
        if self.down:
            raise Down("cassandra down")
        return Partial({u: {"handle": u, "display_name": u.upper()} for u in ids})


class FakeTotals:
    def __init__(self, down: bool = False) -> None:
        self.down = down

    def counts(self, ids: list[int]) -> dict[int, dict]:
        if self.down:
            raise Down("cassandra down")
        return {i: {"likes": i, "comments": 0, "shares": 0, "reactions": {}} for i in ids}


def test_items_fall_back_to_cassandra_without_affinity_and_flag_missing_parts():
    posts = [post(3, "a"), post(2, "b")]
    items = Items(DownRedisItems(), CassandraItems(FakeProfiles(), FakeTotals()))  # type: ignore[arg-type]
    out = items.items(posts, reader="v")
    assert out.complete and [it["author"]["display_name"] for it in out.value] == ["A", "B"]
    assert out.value[0]["counts"]["likes"] == 3 and all("affinity" not in it for it in out.value)
    out = Items(DownRedisItems(), CassandraItems(FakeProfiles(down=True), FakeTotals())).items(posts)  # type: ignore[arg-type]
    assert not out.complete and out.value[0]["author"] == {"user_id": "a", "handle": None, "display_name": None,
                                                           "avatar_url": None}
    out = Items(DownRedisItems(), CassandraItems(FakeProfiles(), FakeTotals(down=True))).items(posts)  # type: ignore[arg-type]
    assert not out.complete and out.value[0]["counts"] is None and out.value[0]["author"]["handle"] == "a"


class FakeFreshness:
    source = "redis"

    def __init__(self, down: bool) -> None:
        self.down = down

    def freshness(self, reader: str) -> dict[str, Any]:
        if self.down:
            raise Down("redis down")
        return {"source": "redis", "applied": {"ts": "1"}, "age_ms": 5, "fanout_watermarks": {}}


def test_freshness_by_source():
    assert Freshness(FakeFreshness(False), NoFreshness()).of("v", "redis")["age_ms"] == 5  # type: ignore[arg-type]
    assert Freshness(FakeFreshness(True), NoFreshness()).of("v", "redis") == blank("unknown")  # type: ignore[arg-type]
    assert Freshness(FakeFreshness(False), NoFreshness()).of("v", "cassandra") == blank("cassandra")  # type: ignore[arg-type]
