"""Trending and moderation: a hidden post stops counting for its hashtags and in the posts ranking,
and counts again when it is shown."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from topologies.trending.logic import (
    DEFAULT_WINDOW,
    DEMO_WINDOW,
    HASHTAGS,
    MODERATION,
    POSTS,
    Contribution,
    WindowSpec,
    dedup_key,
    simulate,
)
from topologies.trending.moderation import (
    PostVisibility,
    bucket_ms,
    correction_event_id,
    is_correction,
    moderate,
    on_engagement,
    on_post_hashtag,
    on_verdict,
    prune_buckets,
    verdict_contribution,
)

SPEC = WindowSpec(20_000, 10_000, lateness_ms=10_000, out_of_orderness_ms=0)


def _verdict(decision: str, at: int, kind: str = "POST", post_id: int = 7) -> dict:
    return {"event_id": "v", "occurred_at": at, "kind": kind, "post_id": post_id, "content_id": post_id,
            "decision": decision}


def test_a_verdict_on_a_post_is_a_moderation_row_weighted_by_whether_it_hides() -> None:
    assert verdict_contribution("ModerationVerdict", _verdict("REMOVE", 5)) == Contribution(MODERATION, "7", 5, 1.0, 0)
    assert verdict_contribution("ModerationVerdict", _verdict("LIMIT", 5)).weight == 1.0
    assert verdict_contribution("ModerationVerdict", _verdict("ALLOW", 6)).weight == 0.0
    assert verdict_contribution("ModerationVerdict", _verdict("REMOVE", 5, kind="COMMENT")) is None
    assert verdict_contribution("PostCreated", _verdict("REMOVE", 5)) is None


def test_hide_retracts_each_tag_at_the_posts_time_and_an_overturn_re_adds_with_new_ids() -> None:
    s = PostVisibility()
    assert on_post_hashtag(s, "spam", 1_000, "p1") == []
    assert on_post_hashtag(s, "deals", 1_000, "p1") == []
    assert on_post_hashtag(s, "spam", 1_000, "p1") == []  # a re-delivered post: nothing new
    hide = on_verdict(s, True, 2_000)
    assert [c.contribution for c in hide] == [Contribution(HASHTAGS, "spam", 1_000, -1.0, -1),
                                              Contribution(HASHTAGS, "deals", 1_000, -1.0, -1)]
    assert on_verdict(s, True, 2_000) == [] and on_verdict(s, True, 2_500) == []  # re-delivery, same outcome
    show = on_verdict(s, False, 3_000)  # a moderator overturns the model
    assert [c.contribution for c in show] == [Contribution(HASHTAGS, "spam", 1_000, 1.0, 1),
                                              Contribution(HASHTAGS, "deals", 1_000, 1.0, 1)]
    again = on_verdict(s, True, 4_000)
    ids = {c.event_id for c in hide} | {c.event_id for c in show} | {c.event_id for c in again}
    assert len(ids) == 3 and all(is_correction(i) for i in ids) and not is_correction("p1")
    # dedup keys differ between the generations and from the post's own contribution
    keys = {dedup_key(c.event_id, HASHTAGS, "spam") for c in hide + show + again}
    assert len(keys) == 3 and dedup_key("p1", HASHTAGS, "spam") not in keys


def test_an_older_verdict_read_after_a_newer_one_changes_nothing() -> None:
    s = PostVisibility()
    on_post_hashtag(s, "x", 1_000, "p")
    assert on_verdict(s, False, 5_000) == []
    assert on_verdict(s, True, 4_000) == []  # emitted before the ALLOW: stale
    assert not s.hidden


def test_a_verdict_read_before_its_post_retracts_the_post_when_it_comes() -> None:
    s = PostVisibility()
    assert on_verdict(s, True, 2_000) == []
    out = on_post_hashtag(s, "x", 1_000, "p")
    assert [c.contribution for c in out] == [Contribution(HASHTAGS, "x", 1_000, -1.0, -1)]
    assert out[0].event_id == correction_event_id("p", 0)
    assert [c.contribution.weight for c in on_verdict(s, False, 3_000)] == [1.0]


@given(st.lists(st.tuples(st.sampled_from(["tag", "verdict"]), st.booleans(), st.integers(0, 20)), max_size=30))
def test_a_tag_nets_one_when_the_post_ends_visible_and_zero_when_hidden(steps) -> None:
    s, net, counted = PostVisibility(), {}, set()
    for what, flag, n in steps:
        if what == "tag":
            tag = f"t{n % 3}"
            out = on_post_hashtag(s, tag, 1_000, "p")
            if tag not in counted:  # the post's own contribution, counted once (dedup)
                counted.add(tag)
                net[tag] = net.get(tag, 0) + 1
        else:
            out = on_verdict(s, flag, n)
        seen = set()
        for c in out:
            assert (c.event_id, c.contribution.item) not in seen
            seen.add((c.event_id, c.contribution.item))
            net[c.contribution.item] += c.contribution.count
    assert net == {t: 0 if s.hidden else 1 for t in counted}


def test_a_retraction_within_the_lateness_updates_the_fired_window_and_one_too_late_changes_nothing() -> None:
    post = [Contribution(HASHTAGS, "spam", 1_000, 1.0, 1), Contribution(HASHTAGS, "spam", 2_000, 1.0, 1),
            Contribution(HASHTAGS, "ok", 3_000, 1.0, 1)]
    later = [Contribution(HASHTAGS, "ok", 25_000, 1.0, 1)]  # watermark t=24999: [0, 20s) fired
    retract = [Contribution(HASHTAGS, "spam", 1_000, -1.0, -1), Contribution(HASHTAGS, "spam", 2_000, -1.0, -1)]
    before = simulate(post + later, SPEC, k=5, flush=False).final()
    assert [(e.item, e.count) for e in before[("hashtags:20s", 20_000)]] == [("spam", 2), ("ok", 1)]
    after = simulate(post + later + retract, SPEC, k=5, flush=False).final()
    assert [(e.item, e.count) for e in after[("hashtags:20s", 20_000)]] == [("ok", 1)]
    # re-added (an overturn): the window counts it again
    back = simulate(post + later + retract + [c._replace(weight=1.0, count=1) for c in retract], SPEC, k=5,
                    flush=False).final()
    assert [(e.item, e.count) for e in back[("hashtags:20s", 20_000)]] == [("spam", 2), ("ok", 1)]


# -- the posts ranking: a hidden post's engagements stop counting ------------------------------------
def _eng(post: str, ts: int, weight: float) -> Contribution:
    return Contribution(POSTS, post, ts, weight, 1 if weight > 0 else -1)


def _mod(post: str, hides: bool, at: int) -> Contribution:
    return Contribution(MODERATION, post, at, 1.0 if hides else 0.0, 0)


# post 7 has the most engagement in [0, 20s): like, like, comment (bucket 0) and a share (bucket 10s)
ENGAGEMENT = [_eng("7", 1_000, 1.0), _eng("7", 2_000, 1.0), _eng("7", 3_000, 3.0), _eng("8", 4_000, 1.0),
              _eng("8", 5_000, 1.0), _eng("7", 12_000, 5.0)]
FIRE = [_eng("9", 25_000, 1.0)]  # watermark t=24999: [0, 20s) fires


def _ranked(sim, scope: str, end: int = 20_000) -> list[tuple[str, int, float]]:
    return [(e.item, e.count, e.score) for e in sim.final().get((scope, end), [])]


def _run(rows: list[Contribution]):
    return simulate(moderate(rows, [SPEC]), SPEC, k=5, flush=False)


def test_engagement_buckets_retract_and_re_add_with_their_own_ids() -> None:
    s = PostVisibility()
    assert on_engagement(s, "7", 1_000, 1, 1.0, 10_000) and on_engagement(s, "7", 3_000, 1, 3.0, 10_000)
    assert on_engagement(s, "7", 12_000, -1, -1.0, 10_000)
    assert s.buckets == {0: (2, 4.0), 10_000: (-1, -1.0)}
    hide = on_verdict(s, True, 20_000)
    # a marker first (the rank step leaves the post out from now on), then one correction per bucket
    assert [c.contribution for c in hide] == [Contribution(MODERATION, "7", 0, 1.0, 0),
                                              Contribution(POSTS, "7", 0, -4.0, -2),
                                              Contribution(POSTS, "7", 10_000, 1.0, 1)]
    assert not on_engagement(s, "7", 13_000, 1, 5.0, 10_000)  # while hidden: recorded, not counted
    assert on_verdict(s, True, 20_000) == [] and on_verdict(s, True, 21_000) == []  # redelivery, same outcome
    assert on_verdict(s, False, 19_000) == []  # older than the REMOVE: stale
    show = on_verdict(s, False, 22_000)
    assert [c.contribution for c in show] == [Contribution(MODERATION, "7", 0, 0.0, 0),
                                              Contribution(POSTS, "7", 0, 4.0, 2),
                                              Contribution(POSTS, "7", 10_000, 4.0, 0)]
    ids = [c.event_id for c in hide[1:] + show[1:]]
    assert len(set(ids)) == 4 and all(is_correction(i) for i in ids)
    assert len({dedup_key(i, POSTS, "7") for i in ids}) == 4
    prune_buckets(s, [SPEC], 19_999)  # [0, 20s) is past its lateness at 29999, bucket 0's last window
    assert set(s.buckets) == {0, 10_000}
    prune_buckets(s, [SPEC], 29_999)
    assert set(s.buckets) == {10_000}


def test_a_bucket_is_within_one_slide_of_every_configured_window() -> None:
    assert bucket_ms([DEFAULT_WINDOW, DEMO_WINDOW]) == 10_000
    assert bucket_ms([WindowSpec(60_000, 15_000), WindowSpec(60_000, 10_000)]) == 5_000


@given(st.lists(st.integers(0, 10_000_000), max_size=20))
def test_every_time_in_a_bucket_is_in_the_same_windows_as_its_start(times) -> None:
    specs = [DEFAULT_WINDOW, DEMO_WINDOW, WindowSpec(60_000, 15_000, 5_000), WindowSpec(40_000, 10_000)]
    size = bucket_ms(specs)
    for ts in times:
        assert all(s.assign(ts) == s.assign(ts - ts % size) for s in specs)


def test_a_post_removed_before_its_window_fires_is_absent_from_the_posts_and_viral_lists() -> None:
    plain = _run(ENGAGEMENT + FIRE)
    assert _ranked(plain, "posts:20s")[0] == ("7", 4, 1_800.0)  # 10 per 20 s = 1800 per hour
    assert _ranked(plain, "viral-posts:20s")[0][0] == "7"
    removed = _run(ENGAGEMENT + [_mod("7", True, 13_000), _mod("7", True, 13_000)] + FIRE)
    assert _ranked(removed, "posts:20s") == [("8", 2, 360.0)]
    assert _ranked(removed, "viral-posts:20s") == []
    # [-10s, 10s) fired (at the share) with post 7 in it: re-emitted without it (late update)
    assert [e.item for e in removed.final()[("posts:20s", 10_000)]] == ["8"]
    assert all("7" not in [e.item for e in t.entries] for t in removed.emissions if t.window_end == 20_000)


def test_a_removal_after_the_window_fired_re_publishes_it_and_an_overturn_brings_the_full_weight_back() -> None:
    def lists(sim) -> list[list[str]]:
        return [[e.item for e in t.entries] for t in sim.emissions if t.scope == "posts:20s" and t.window_end == 20_000]

    fired = ENGAGEMENT + FIRE
    assert lists(_run(fired)) == [["7", "8"]]
    removed = fired + [_mod("7", True, 26_000)]  # within the lateness: [0, 20s) closes at 29999
    # re-published once per retracted bucket, never with what is left of 7's weight after the first
    assert lists(_run(removed)) == [["7", "8"], ["8"], ["8"]]
    while_hidden = removed + [_eng("7", 15_000, 1.0)]  # a like while hidden: not counted
    assert lists(_run(while_hidden)) == [["7", "8"], ["8"], ["8"]]
    back = while_hidden + [_mod("7", False, 27_000)]  # a moderator's ALLOW: the full weight, the like too
    sim = _run(back)
    assert lists(sim) == [["7", "8"], ["8"], ["8"], ["7", "8"], ["7", "8"]]  # re-added bucket by bucket
    assert _ranked(sim, "posts:20s") == [("7", 5, 1_980.0), ("8", 2, 360.0)]
    assert _ranked(sim, "viral-posts:20s")[0][0] == "7"
    # a redelivered verdict (the ALLOW again, the older REMOVE again) changes nothing
    again = _run(back + [_mod("7", False, 27_000), _mod("7", True, 26_000)])
    assert again.emissions == sim.emissions


@given(st.lists(st.tuples(st.sampled_from(["eng", "verdict"]), st.booleans(), st.integers(0, 40)), max_size=30))
def test_a_bucket_nets_its_sum_when_the_post_ends_visible_and_zero_when_hidden(steps) -> None:
    s, passed, total = PostVisibility(), {}, {}
    for what, flag, n in steps:
        if what == "eng":
            ts, w = n * 1_000, 1.0 if flag else -1.0
            b = ts - ts % 10_000
            total[b] = total.get(b, 0.0) + w
            if on_engagement(s, "7", ts, 1 if flag else -1, w, 10_000):
                passed[b] = passed.get(b, 0.0) + w
            continue
        for c in on_verdict(s, flag, n):
            if c.contribution.kind == MODERATION:  # the marker: counts nowhere
                continue
            assert c.contribution.ts in total
            passed[c.contribution.ts] = passed.get(c.contribution.ts, 0.0) + c.contribution.weight
    assert {b: w for b, w in passed.items() if w} == ({} if s.hidden else {b: w for b, w in total.items() if w})


def test_a_post_state_pickled_before_engagements_were_kept_still_loads() -> None:
    import pickle

    old = object.__new__(PostVisibility)  # the previous version's fields only
    old.__dict__.update(tags=["x"], ts=1_000, event_id="p", hidden=True, version=5, generation=1)
    s = pickle.loads(pickle.dumps(old))
    assert (s.buckets, s.post, s.tags, s.hidden) == ({}, "", ["x"], True)
    assert not on_engagement(s, "7", 2_000, 1, 1.0, 10_000) and s.buckets == {0: (1, 1.0)}


def test_a_post_state_pickled_when_the_class_lived_in_logic_still_loads() -> None:
    import pickle

    old = pickle.dumps(PostVisibility(tags=["x"], hidden=True), protocol=0)
    old = old.replace(b"topologies.trending.moderation", b"topologies.trending.logic")
    assert b"topologies.trending.logic" in old
    loaded = pickle.loads(old)
    assert isinstance(loaded, PostVisibility) and loaded.tags == ["x"] and loaded.hidden
