"""Spam features shared by training and the moderation topology: content facts plus behaviour facts.

Content facts come from the text alone (links and their domains, hashtags, length). Behaviour facts
come from state (the account's age, follower/following counts, posting rate, and how many *other*
accounts posted near-identical text recently: MinHash over word shingles, banded for LSH lookups).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from datasketch import MinHash

URL = re.compile(r"https?://[^\s]+")
TAG = re.compile(r"#\w+")
WORD = re.compile(r"[a-z0-9]+")
NUM_PERM, BANDS = 64, 16  # 16 bands of 4 rows: Jaccard 0.67 shares a band with p ~0.97, Jaccard 0.3 with ~0.12
SPAM_FEATURES = ("n_links", "n_domains", "n_hashtags", "hashtag_share", "text_len", "n_words",
                 "dup_authors_log", "posts_last_hour", "account_age_h_log", "followers_log", "following_log",
                 "following_per_follower")


@dataclass(frozen=True)
class Content:
    """What the text says about itself."""

    text: str
    links: tuple[str, ...]
    domains: tuple[str, ...]
    hashtags: int
    words: int


@dataclass(frozen=True)
class Behaviour:
    """What state says about the author when the content was posted (None = unknown)."""

    account_age_h: float | None
    followers: int | None
    following: int | None
    posts_last_hour: int
    dup_authors: int


def domain_of(url: str) -> str:
    """The lower-cased host of a URL, without a leading ``www.``."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def content(text: str, links: list[str] | tuple[str, ...] | None = None) -> Content:
    """Content facts of a post or comment (links from the text and the post's ``links`` field)."""
    found = tuple(dict.fromkeys([*(links or ()), *URL.findall(text)]))
    return Content(text, found, tuple(sorted({d for d in map(domain_of, found) if d})),
                   len(TAG.findall(text)), len(WORD.findall(URL.sub(" ", text.lower()))))


def shingles(text: str) -> set[bytes]:
    """The text's words with links and hashtags removed (a campaign varies those)."""
    return {w.encode() for w in WORD.findall(TAG.sub(" ", URL.sub(" ", text.lower())))}


@lru_cache(maxsize=1)
def _permutations() -> Any:
    """The MinHash permutations of ``seed=17`` (drawing them costs more than hashing a post)."""
    m = MinHash(num_perm=NUM_PERM, seed=17)
    return m.permutations, m.scheme


def band_keys(text: str) -> list[str]:
    """LSH band keys of the text's MinHash: near-identical texts share at least one key."""
    grams = shingles(text)
    if len(grams) < 3:
        return []  # too short to call anything a near-duplicate
    perms, scheme = _permutations()
    m = MinHash(num_perm=NUM_PERM, seed=17, permutations=perms, scheme=scheme)  # not re-drawn per text
    m.update_batch(list(grams))
    rows = NUM_PERM // BANDS
    hv = m.hashvalues
    return [f"{b}:{hash(tuple(int(x) for x in hv[b * rows:(b + 1) * rows])) & 0xFFFFFFFFFFFF:x}"
            for b in range(BANDS)]


def _log(x: float | None) -> float:
    return math.log1p(x) if x is not None else math.nan


def spam_row(c: Content, b: Behaviour) -> list[float]:
    """One feature row, in :data:`SPAM_FEATURES` order (unknown facts are NaN)."""
    ratio = (b.following / (b.followers + 1)) if b.following is not None and b.followers is not None else math.nan
    return [len(c.links), len(c.domains), c.hashtags, c.hashtags / max(1, c.words + c.hashtags), len(c.text),
            c.words, math.log1p(b.dup_authors), b.posts_last_hour, _log(b.account_age_h), _log(b.followers),
            _log(b.following), ratio]


def matrix(rows: list[list[float]]) -> np.ndarray:
    """Rows as a float64 matrix with :data:`SPAM_FEATURES` columns."""
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(SPAM_FEATURES))
