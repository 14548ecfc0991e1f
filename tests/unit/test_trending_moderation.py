"""Trending and moderation: a hidden post's hashtags stop counting, and count again when it is shown."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from topologies.trending.logic import (
    HASHTAGS,
    MODERATION,
    Contribution,
    PostVisibility,
    WindowSpec,
    correction_event_id,
    dedup_key,
    is_correction,
    on_post_hashtag,
    on_verdict,
    simulate,
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
