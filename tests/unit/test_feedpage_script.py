"""stores.feedpage: the page script's key placeholders all become the stores' key prefixes."""

from __future__ import annotations

import re

from stores import feedpage, graph
from stores import timelines as tls


def test_every_placeholder_is_a_key_prefix_and_visibility_literals_survive() -> None:
    assert "K_" not in feedpage.SCRIPT
    literals = set(re.findall(r"'([^']*)'", feedpage.SCRIPT))
    assert {"FOLLOWERS", "FRIENDS", "PUBLIC"} <= literals  # visibility values, not keys
    assert {tls.k_timeline(""), tls.k_negative(""), graph.k_followers(""), graph.k_loaded("")} <= literals
