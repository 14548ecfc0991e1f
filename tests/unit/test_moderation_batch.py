"""The moderation worker's batch logic: a batch's behaviour facts are those of scoring it one by one in order."""

from __future__ import annotations

from topologies.moderation.logic import HOUR_MS, Item, behaviour, fold_behaviour, windows


def item(cid: int, author: str, at: int) -> Item:
    return Item(f"post:{cid}", "POST", cid, cid, author, "t", (), at, f"e{cid}")


def one_by_one(items: list[Item], bands: list[list[str]]) -> list[tuple[int, int]]:
    """Each item folded alone, the state carried from one call to the next (the per-record worker)."""
    recent: dict[str, dict[str, int]] = {}
    members: dict[str, set[str]] = {}
    out = []
    for it, bs in zip(items, bands):
        out += fold_behaviour([it], [bs], recent, members)
        recent.setdefault(it.author_id, {})[str(it.content_id)] = it.at
        for b in bs:
            members.setdefault(b, set()).add(it.author_id)
    return out


def test_a_batch_sees_its_own_earlier_items_like_one_by_one() -> None:
    items = [item(1, "s1", 1000), item(2, "s2", 1010), item(3, "s1", 1020), item(1, "s1", 1000),  # a redelivery
             item(4, "a", 1030), item(5, "s3", 1040)]
    bands = [["x", "y"], ["y"], ["x"], ["x", "y"], [], ["z", "x"]]
    batch = fold_behaviour(items, bands, {}, {})
    assert batch == one_by_one(items, bands)
    # s2 shares band y with s1's first post (earlier in the batch); s1's second post has s1 alone in x; the
    # redelivery sees s2 in y and leaves the later post out of its hour; s3 shares x with s1
    assert batch == [(1, 0), (1, 1), (2, 0), (1, 1), (1, 0), (1, 1)]


def test_the_state_before_the_batch_counts_and_the_rate_window_is_an_hour() -> None:
    recent = {"s1": {"90": 1000 - HOUR_MS, "91": 1000 - HOUR_MS + 1}}  # one just outside, one just inside
    members = {"x": {"old", "s1"}}
    assert fold_behaviour([item(1, "s1", 1000)], [["x"]], recent, members) == [(2, 1)]
    assert recent == {"s1": {"90": 1000 - HOUR_MS, "91": 1000 - HOUR_MS + 1}}  # inputs left as they were


def test_behaviour_and_windows() -> None:
    it = item(1, "a", 7_200_000 + 10)
    b = behaviour(it, {"created_at": 10}, {"followers": 3, "following": 4}, 2, 1)
    assert (b.account_age_h, b.followers, b.following, b.posts_last_hour, b.dup_authors) == (2.0, 3, 4, 2, 1)
    assert behaviour(it, None, {"followers": 0, "following": 0}, 1, 0).account_age_h is None
    assert windows([item(1, "a", 5), item(2, "b", 3), item(3, "a", 2)]) == {"a": (2, 5), "b": (3, 3)}
