"""stores.moderation on a real Redis: the merge is idempotent and order-independent, the hidden set follows
the effective decision, the queue holds what needs a moderator (issue 17: replayable, retroactive)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest
import redis
from support.redis_servers import redis_single  # noqa: F401  (fixture)

from stores import moderation as mod

pytestmark = pytest.mark.integration
CTX = {"content_key": "post:7", "kind": "POST", "content_id": 7, "post_id": 7, "author_id": "a"}
MODEL_V1 = ("m", 100, {"decision": "REMOVE", "scores": {"spam": 0.9}, "reasons": ["spam"]}, False)
MODEL_V2 = ("m", 200, {"decision": "ALLOW", "scores": {"spam": 0.3}, "reasons": []}, True)  # the edit: unsure
DECISION = ("d", 150, {"decision": "LIMIT", "by": "mod1", "reason": "borderline"}, False)


@pytest.fixture()
def r(redis_single) -> Iterator[redis.Redis]:  # noqa: F811
    client = redis.Redis(port=redis_single.ports[0])
    client.flushdb()
    yield client
    client.close()


def apply(r: redis.Redis, events: tuple) -> None:
    for part, at, body, review in events:
        mod.merge(r, "post:7", 7, part, at, body, CTX, review=review)


def snapshot(r: redis.Redis) -> tuple:
    st = mod.state(r, "post:7")
    return st.get("m"), st.get("d"), bool(r.sismember(mod.HIDDEN, "7")), r.zrange(mod.QUEUE, 0, -1)


def test_every_order_and_every_replay_gives_the_same_state(r: redis.Redis) -> None:
    results = set()
    for order in itertools.permutations((MODEL_V1, MODEL_V2, DECISION)):
        r.flushdb()
        apply(r, order)
        apply(r, order)  # a replay on top changes nothing
        m, d, hidden, _ = snapshot(r)
        results.add((repr(m), repr(d), hidden))
    assert len(results) == 1
    m, d, hidden = next(iter(results))
    assert "ALLOW" in m and "mod1" in d and hidden is True  # the moderator's LIMIT stays in force over the edit


def test_hidden_set_follows_the_effective_decision_and_a_decision_empties_the_queue(r: redis.Redis) -> None:
    apply(r, [MODEL_V1])
    assert snapshot(r)[2] is True
    apply(r, [MODEL_V2])
    assert snapshot(r)[2] is False and snapshot(r)[3] == [b"post:7"]  # an unsure score is queued
    apply(r, [("d", 300, {"decision": "ALLOW", "by": "mod2", "reason": "fine"}, False)])
    assert snapshot(r)[2] is False and snapshot(r)[3] == []


def test_reports_count_reporters_once_and_appeals_are_kept_once(r: redis.Redis) -> None:
    assert mod.report(r, "post:7", "u1", 50, CTX) == 1
    assert mod.report(r, "post:7", "u1", 60, CTX) == 1
    assert mod.report(r, "post:7", "u2", 70, CTX) == 2
    assert mod.queue(r, 10) == [("post:7", 50)]  # queued at the first report: oldest first
    assert mod.appeal(r, "post:7", {"by": "a", "reason": "x"}, 80) is True
    assert mod.appeal(r, "post:7", {"by": "a", "reason": "y"}, 90) is False
    assert mod.state(r, "post:7")["appeal"]["reason"] == "x"


def test_behaviour_counts_the_posting_rate_and_other_authors_near_duplicates(r: redis.Redis) -> None:
    assert mod.behaviour(r, "s1", 1, 1_000, ["b1", "b2"]) == (1, 0)
    assert mod.behaviour(r, "s2", 2, 2_000, ["b2", "b3"]) == (1, 1)
    assert mod.behaviour(r, "s1", 3, 3_000, ["b1"]) == (2, 0)
    assert mod.behaviour(r, "s1", 3, 3_000, ["b1"]) == (2, 0)  # a replayed post is not counted twice
    assert mod.behaviour(r, "s1", 4, 3_000 + mod.HOUR_MS, []) == (1, 0)  # the earlier posts fell out of the hour


def test_a_comment_verdict_hides_the_comment_not_the_post(r: redis.Redis) -> None:
    ctx = {**CTX, "content_key": "comment:9", "kind": "COMMENT", "content_id": 9}
    mod.merge(r, "comment:9", 9, "m", 100, {"decision": "LIMIT", "reasons": ["offensive"]}, ctx)
    assert mod.hidden(r, [9], mod.HIDDEN_COMMENTS) == {9} and mod.hidden(r, [7, 9]) == set()


def test_the_durable_copy_in_cassandra_converges_like_the_merge_in_any_order(stack) -> None:
    """Issue 17: ``moderation_decisions`` (what the Redis-down read path filters on) is last-writer-wins per
    part on the part's time, so every order and every replay leaves the same effective decision."""
    from core.settings import isolated
    from stores import cassandra

    s = cassandra.session(isolated(stack, "fs_itest_mod_durable", 11))
    base = random.randrange(1 << 40)  # fresh ids: the keyspace may outlive a run
    results = set()
    for i, order in enumerate(itertools.permutations((MODEL_V1, MODEL_V2, DECISION))):
        pid = base + i
        for part, at, body, _ in (*order, *order):  # a replay on top changes nothing
            mod.record(s, f"post:{pid}", pid, part, at, body)
        m, d = mod.decisions_durable(s, [pid])[pid]
        results.add((repr(m), repr(d), pid in mod.hidden_durable(s, [pid, 999])))
    assert len(results) == 1
    m, d, hidden = next(iter(results))
    assert "ALLOW" in m and "mod1" in d and hidden is True  # as in Redis: the moderator's LIMIT over the edit
    mod.record(s, f"post:{base}", base, "d", 300, {"decision": "ALLOW", "by": "mod2", "reason": "fine"})
    assert mod.hidden_durable(s, [base, base + 1]) == {base + 1}
    mod.record(s, f"comment:{base + 1}", base + 1, "m", 100, {"decision": "LIMIT", "reasons": ["offensive"]})
    assert mod.hidden_durable(s, [base + 1], "comment") == {base + 1}  # comments have their own partitions
    mod.record(s, f"comment:{base + 2}", base + 2, "m", 100, {"decision": "ALLOW"})
    assert mod.hidden_durable(s, [base + 1, base + 2, base + 3], "comment") == {base + 1}
