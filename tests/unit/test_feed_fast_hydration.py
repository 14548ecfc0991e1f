"""serving.feed.fast's lean hydration equals the shared one: counts from ``cnt:`` hashes, author blocks
from cached profile hashes, and items shaped as serving.readers.items.shape shapes them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from serving.feed import fast
from serving.readers.engagement import counts_dict
from serving.readers.items import shape
from stores import counters, feedpage
from stores import users as users_store

pytestmark = pytest.mark.unit

COUNTS = [{}, {b"likes": b"3"}, {b"likes": b"1", b"comments": b"2", b"shares": b"0", b"r:love": b"4", b"r:sad": b"0"},
          {b"r:wow": b"7", b"shares": b"5", b"extra": b"9", b"r:": b"1"}]
PROFILES = [{}, {b"handle": b"h", b"display_name": b"", b"avatar_url": b"http://a/b.png", b"bio": b"x",
                 b"created_at": b"12"},
            {b"handle": b"", b"display_name": "Zoë".encode()}]


def flat(raw: dict[bytes, bytes]) -> list[bytes]:
    """A hash as HGETALL answers it (what the page script returns)."""
    return [x for kv in raw.items() for x in kv]


@pytest.mark.parametrize("raw", COUNTS)
def test_counts_equal_the_shared_parser(raw: dict[bytes, bytes]) -> None:
    assert fast.counts_of(flat(raw)) == counts_dict(counters.parse_hot_counts(raw))
    assert list(fast.counts_of(flat(raw))["reactions"]) == list(counts_dict(counters.parse_hot_counts(raw))["reactions"])


def test_a_non_integer_count_fails_as_the_shared_parser_does() -> None:
    with pytest.raises(ValueError):
        counters.parse_hot_counts({b"likes": b"x"})
    with pytest.raises(ValueError):
        fast.counts_of([b"likes", b"x"])


@pytest.mark.parametrize("raw", PROFILES)
def test_author_block_equals_display_of_the_decoded_profile(raw: dict[bytes, bytes]) -> None:
    expected = users_store.display({"user_id": "u1", **users_store._decode(raw)}, "u1")
    assert fast.author_block("u1", flat(raw)) == expected
    assert list(fast.author_block("u1", flat(raw))) == list(expected)


@pytest.mark.parametrize("ranked", [False, True])
def test_items_equal_shape_field_for_field_in_order(ranked: bool) -> None:
    posts: list[dict[str, Any]] = [
        {"post_id": 9, "author_id": "a", "text": "t", "media": [], "links": [], "hashtags": ["x"], "mentions": [],
         "visibility": "PUBLIC", "edited": False, "created_at": 5, "updated_at": None, "deleted": False},
        {"post_id": 8, "author_id": "b", "text": None, "visibility": "FOLLOWERS", "created_at": 4},
    ]
    raw_counts = [COUNTS[2], COUNTS[1]]
    page = feedpage.RawPage(False, [], [flat(c) for c in raw_counts], {"a": flat(PROFILES[1]), "b": flat(PROFILES[2])},
                            {"a": 3, "b": 0}, {}, {})
    items, complete = asyncio.run(fast._items(None, page, posts, ranked, "reader"))  # type: ignore[arg-type]
    people = {u: {"user_id": u, **users_store._decode(raw)} for u, raw in [("a", PROFILES[1]), ("b", PROFILES[2])]}
    counts = {p["post_id"]: counts_dict(counters.parse_hot_counts(c)) for p, c in zip(posts, raw_counts)}
    expected = shape(posts, people, counts, page.affinity if ranked else None)
    assert complete and items == expected
    assert [list(i) for i in items] == [list(i) for i in expected]  # same key order: same response bytes
