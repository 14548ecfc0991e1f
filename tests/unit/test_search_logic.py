"""The search topology's pure logic and the store's query builders (no engine)."""

from __future__ import annotations

import json

import pytest

from stores import search
from streams.errors import PoisonRecord
from topologies.search import logic


def _post(name: str, pid: int, at: int, author: str = "u1", text: str = "hello", tags=(), vis="PUBLIC"):
    v = {"post_id": pid, "author_id": author, "occurred_at": at}
    if name != "PostDeleted":
        v.update(text=text, hashtags=list(tags), visibility=vis)
    return name, v


def test_versions_follow_event_time_and_leave_room_for_popularity() -> None:
    assert search.version_of(1000) < search.version_of(1000) + 2**20 - 1 < search.version_of(1001)


def test_edit_keeps_created_at_and_popularity_and_delete_is_a_tombstone() -> None:
    created = logic.post_write(*_post("PostCreated", 7, 100, tags=["#Rust", "rust", "Go"]), None)
    assert created.doc["hashtags"] == ["rust", "go"] and created.version == search.version_of(100)
    cur = {**created.doc, "popularity": 9}
    edited = logic.post_write(*_post("PostEdited", 7, 200, text="bye"), cur)
    assert (edited.doc["created_at"], edited.doc["popularity"], edited.doc["text"]) == (100, 9, "bye")
    deleted = logic.post_write(*_post("PostDeleted", 7, 300), edited.doc)
    assert deleted.doc["deleted"] is True and "text" not in deleted.doc and deleted.version > edited.version


def test_edit_by_another_author_is_refused() -> None:
    cur = logic.post_write(*_post("PostCreated", 7, 100), None).doc
    with pytest.raises(logic.NotPostAuthor):
        logic.post_write(*_post("PostEdited", 7, 200, author="u2"), cur)


def test_an_edit_of_an_unknown_or_deleted_post_is_refused_never_indexed() -> None:
    """Issue 14 item 6 in the search view: an edit never creates a searchable post."""
    with pytest.raises(logic.UnknownPost, match="PostEdited of post 7"):
        logic.post_write(*_post("PostEdited", 7, 200, author="ghost"), None)
    gone = logic.post_write(*_post("PostDeleted", 7, 300), logic.post_write(*_post("PostCreated", 7, 100), None).doc)
    with pytest.raises(logic.UnknownPost):
        logic.post_write(*_post("PostEdited", 7, 400), gone.doc)
    p = logic.plan([_post("PostEdited", 8, 100), _post("PostCreated", 9, 100), _post("PostEdited", 9, 200)], {})
    assert [i for i, _ in p.refused] == [0] and [w.doc["post_id"] for w in p.writes] == [9]


def test_profile_update_merges_over_the_registration() -> None:
    reg = logic.user_write("UserRegistered", {"user_id": "u1", "handle": "ann", "display_name": "Ann",
                                              "bio": None, "occurred_at": 1}, None)
    upd = logic.user_write("ProfileUpdated", {"user_id": "u1", "display_name": None, "bio": "hi",
                                              "occurred_at": 2}, reg.doc)
    assert upd.doc["handle"] == "ann" and upd.doc["display_name"] == "Ann" and upd.doc["bio"] == "hi"


def test_plan_keeps_the_newest_write_per_document_and_refuses_poison() -> None:
    events = [_post("PostCreated", 1, 100), _post("PostEdited", 1, 200, text="new"),
              _post("PostCreated", 2, 100, vis="SECRET"),
              ("EngagementCount", {"post_id": 1, "window_start": None, "likes": 3, "comments": 0,
                                   "shares": 0, "reactions": {}}),
              ("EngagementCount", {"post_id": 5, "window_start": 1, "likes": 99, "comments": 0,
                                   "shares": 0, "reactions": {}})]
    p = logic.plan(events, {})
    assert [w.doc.get("text") for w in p.writes] == ["new"]
    assert p.writes[0].doc["popularity"] == logic.popularity(3, 0, 0, {}) and p.popularity == {}
    assert [i for i, _ in p.refused] == [2] and isinstance(p.refused[0][1], PoisonRecord)


def test_popularity_buckets_grow_logarithmically() -> None:
    assert logic.popularity(0, 0, 0, None) == 0
    assert len({logic.popularity(n, 0, 0, None) for n in range(100_000)}) < 70


def test_post_filter_encodes_visibility_blocks_deletes_and_moderation() -> None:
    r = search.Reader("me", following=frozenset({"a"}), friends=frozenset({"b"}), blocked=frozenset({"x"}))
    f = json.dumps(search.post_filter(r))
    for needle in ('"FOLLOWERS"', '["a"]', '"FRIENDS"', '["b"]', '["x"]', '"deleted": true', '"hidden": true',
                   '{"term": {"author_id": "me"}}'):
        assert needle in f
    bare = json.dumps(search.post_filter(search.Reader("me")))
    assert "FOLLOWERS" not in bare and "FRIENDS" not in bare  # a stranger sees public posts only


def _keys(node, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            out.add(k)
            _keys(v, out)
    elif isinstance(node, list):
        for v in node:
            _keys(v, out)
    return out


@pytest.mark.parametrize("q", ['"} OR *:* {"script": "x"}', "title:x AND (y OR z)~2 /re.*/", "#Rust\\ -bad"])
def test_user_input_is_only_ever_a_value(q: str) -> None:
    reader = search.Reader("me")
    for body in (search.post_query(q, reader, limit=5), search.user_query(q, reader, limit=5),
                 search.hashtag_query(q, reader)):
        keys = _keys(body["query"], set())
        assert not keys & {"query_string", "simple_query_string", "regexp", "wildcard", "script", "fuzzy"}
        assert q not in keys  # the input never becomes a key
    words, _ = search.split_query(q)
    must = search.post_query(q, reader, limit=5)["query"]["function_score"]["query"]["bool"]["must"][0]
    if words:
        assert must["bool"]["should"][0] == {"match": {"text": {"query": words, "minimum_should_match": "2<75%"}}}


def test_likes_and_comments_build_interests_and_other_engagements_are_ignored() -> None:
    events = [("Liked", {"user_id": "r", "post_id": 5, "post_author_id": "a"}),
              ("CommentAdded", {"user_id": "r", "post_id": 6, "post_author_id": "a", "comment_id": 1}),
              ("Unliked", {"user_id": "r", "post_id": 5, "post_author_id": "a"}),
              ("Shared", {"user_id": "r", "post_id": 7}), ("Liked", {"post_id": 8})]
    p = logic.plan(events, {})
    assert p.interests == [("r", 5, True), ("r", 6, True), ("r", 5, False)]
    assert [i for i, _ in p.refused] == [4]
    acts = search.bulk_actions("ix", [], {}, p.interests)
    assert {a["_id"] for a in acts} == {"i:r"} and acts[0]["script"]["params"]["pid"] == "5"


def test_interest_query_excludes_the_reader_followees_and_seen_posts() -> None:
    r = search.Reader("me", following=frozenset({"f1"}))
    body = search.interest_query(r, ["p:1", "p:2"], since_ms=123, limit=20, exclude_ids=["p:1", "p:2"])
    q = body["query"]["function_score"]["query"]["bool"]
    assert q["must"][0]["more_like_this"]["like"] == [{"_id": "p:1"}, {"_id": "p:2"}]
    assert {"terms": {"author_id": ["f1", "me"]}} in q["must_not"]
    assert {"ids": {"values": ["p:1", "p:2"]}} in q["must_not"]
    assert {"range": {"created_at": {"gte": 123}}} in q["filter"] and search.post_filter(r) in q["filter"]
