"""Read-your-writes, the pure parts: tokens, what a view waits for, marks (issue 23)."""

from __future__ import annotations

import pytest

from serving import consistency as c
from stores import progress

SECRET = "unit-secret-unit-secret-unit-secret-0123"


def test_a_token_round_trips_and_keeps_the_highest_offset_per_partition() -> None:
    token = c.encode_token(SECRET, [("posts.v1", 2, 10), ("posts.v1", 2, 7), ("graph.v1", 0, 3)])
    assert c.decode_token(SECRET, token) == [("graph.v1", 0, 3), ("posts.v1", 2, 10)]
    assert "posts" not in token  # opaque


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # another mac
    lambda t: "W1sicG9zdHMudjEiLDIsOTk5XV0" + t[t.index("."):],  # another payload, same mac
    lambda t: t.replace(".", ""),
    lambda t: "not a token",
    lambda t: "",
])
def test_a_tampered_or_malformed_token_is_refused(mangle) -> None:
    token = c.encode_token(SECRET, [("posts.v1", 2, 10)])
    assert c.decode_token(SECRET, mangle(token)) is None


def test_a_token_signed_with_another_secret_is_refused() -> None:
    assert c.decode_token(SECRET, c.encode_token("another-secret", [("posts.v1", 0, 1)])) is None


def test_a_view_waits_only_for_the_topologies_that_build_it() -> None:
    positions = [("users.v1", 1, 5), ("posts.v1", 0, 9), ("graph.v1", 3, 2)]
    assert c.needs("profile", positions) == [("users", "users.v1", 1, 5), ("graph", "graph.v1", 3, 2)]
    assert c.needs("edges", positions) == [("users", "users.v1", 1, 5), ("graph", "graph.v1", 3, 2)]
    assert c.needs("feed", positions) == [("users", "users.v1", 1, 5), ("fanout", "posts.v1", 0, 9),
                                          ("graph", "graph.v1", 3, 2)]
    assert c.needs("comments", [("users.v1", 1, 5)]) == []


def test_every_view_names_topologies_that_consume_its_topics() -> None:
    consumes = {"users": {"users.v1", "engagements.v1"}, "graph": {"graph.v1"}, "fanout": {"posts.v1"},
                "engagement": {"engagements.v1", "posts.v1", "graph.v1", "notifications.v1"}}
    for view, deps in c.VIEWS.items():
        for topo, topic in deps:
            assert topic in consumes[topo], (view, topo, topic)


def test_pending_until_the_mark_reaches_the_offset() -> None:
    wanted = [("fanout", "posts.v1", 0, 9)]
    assert c.pending(wanted, {}) == wanted  # no mark: not applied
    assert c.pending(wanted, {"fanout": {("posts.v1", 0): 8}}) == wanted
    assert c.pending(wanted, {"fanout": {("posts.v1", 0): 9}}) == []
    assert c.pending(wanted, {"fanout": {("posts.v1", 1): 99}, "graph": {("posts.v1", 0): 99}}) == wanted


def test_marks_only_grow_when_merged() -> None:
    into = {"fanout": {("posts.v1", 0): 9}}
    c.merge(into, {"fanout": {("posts.v1", 0): 4, ("posts.v1", 1): 2}, "graph": {("graph.v1", 0): 1}})
    assert into == {"fanout": {("posts.v1", 0): 9, ("posts.v1", 1): 2}, "graph": {("graph.v1", 0): 1}}


def test_marks_parse_from_redis_fields_with_dotted_topics() -> None:
    assert progress.parse({b"posts.v1:3": b"17", "graph.v1:0": "2"}) == {("posts.v1", 3): 17, ("graph.v1", 0): 2}
    assert progress.highest([("a", 0, 3), ("a", 0, 1), ("a", 1, 0)]) == {("a", 0): 3, ("a", 1): 0}


def test_stamp_adds_the_token_to_the_body_and_the_header() -> None:
    from core.settings import Settings

    settings = Settings(jwt_secret=SECRET)
    body: dict = {"event_id": "e"}
    headers = c.stamp(settings, body, [("users.v1", 1, 4)])
    assert headers == {c.HEADER: body["consistency_token"]}
    assert c.decode_token(SECRET, body["consistency_token"]) == [("users.v1", 1, 4)]
    assert c.replay_headers(body) == headers
    assert c.stamp(settings, {}, []) == {}
