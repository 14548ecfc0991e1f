"""bench.moderation_drain: its backlog, and its reference agrees with the worker's fold on the behaviour facts."""

from __future__ import annotations

from typing import Any

from bench.moderation_drain import backlog, reference
from models.moderation.features import band_keys
from streams.catalog import ENGAGEMENTS, POSTS
from topologies.moderation.logic import fold_behaviour, item_of


class Echo:
    """A classifier stand-in returning its inputs."""

    def classify(self, facts: list[Any]) -> list[Any]:
        return list(facts)


def test_the_backlog_has_spam_redeliveries_and_comments_with_rising_times() -> None:
    log = backlog(400, seed=3)
    posts = [v for t, _, v in log if t == POSTS.name]
    assert len(log) == 400 and 250 < len(posts) < 320
    assert any("-spam" in v["author_id"] for v in posts)
    assert len({v["event_id"] for v in posts}) < len(posts)  # redeliveries
    first = [v["occurred_at"] for v in {v["event_id"]: v for v in posts}.values()]  # redeliveries left out
    comments = [v["occurred_at"] for t, _, v in log if t == ENGAGEMENTS.name]
    assert first == sorted(first) and comments == sorted(comments)


def test_the_reference_folds_behaviour_as_the_worker_does() -> None:
    log = backlog(600, seed=4)
    _, facts = reference(Echo(), log)  # type: ignore[arg-type]
    want = [(b.posts_last_hour, b.dup_authors) for _, b in facts]
    got: list[tuple[int, int]] = []
    for topic in (POSTS.name, ENGAGEMENTS.name):
        items = [item_of(n, v) for t, n, v in log if t == topic]
        got += fold_behaviour(items, [band_keys(i.text) for i in items], {}, {})  # type: ignore[union-attr]
    assert got == want
    assert any(dup > 0 for _, dup in want)  # the campaigns' near-duplicates are seen
