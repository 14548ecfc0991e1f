"""stores.feedpage: the page script's key placeholders all become the stores' key prefixes."""

from __future__ import annotations

import re

from stores import feedpage, graph
from stores import timelines as tls


def test_every_placeholder_becomes_a_key_function_and_visibility_literals_survive() -> None:
    assert "'K_" not in feedpage.SCRIPT  # no quoted placeholder left: every key is built by a function
    literals = set(re.findall(r"'([^']*)'", feedpage.SCRIPT))
    assert {"FOLLOWERS", "FRIENDS", "PUBLIC"} <= literals  # visibility values, not keys
    for fn in (tls.k_timeline, tls.k_negative, graph.k_followers, graph.k_loaded):
        pre, _, suf = fn("\x00").partition("\x00")
        assert pre in literals and suf in literals  # the Lua key function builds the key as Python does


def test_a_readers_keys_share_one_hash_slot() -> None:
    from redis.crc import key_slot

    from stores import counters, users
    from stores import posts as post_store
    from stores.requests import k_read_rate_user

    fns = (tls.k_timeline, tls.k_built, tls.k_stale, tls.k_ok, tls.k_negative, tls.k_fresh, tls.k_lock,
           graph.k_following, graph.k_followers, graph.k_friends, graph.k_loaded, graph.k_blocks,
           counters.affinity_key, users.k_user, users.k_registered, k_read_rate_user)
    for rd in ("br0", "u-7f3a", "alice.b"):
        assert len({key_slot(fn(rd).encode()) for fn in fns}) == 1
    assert key_slot(post_store.k_post(42).encode()) == key_slot(post_store.k_version(42).encode())
    assert len({key_slot(tls.k_timeline(f"r{i}").encode()) for i in range(50)}) > 40  # readers spread out
