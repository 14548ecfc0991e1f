"""Synthetic, labelled spam data (seeded): legitimate users of the benchmark world plus spam campaigns.

- **Legitimate users** (``core.workload.build_graph``): accounts 30 days to 4 years old, posts from
  ``OpStream.post`` spread over 72 h (10 % carry a news link). Hard negatives: 3 % are *promoters*
  posting a burst of similar link posts to their own shop; 20 % are new accounts (36 s to 2 days,
  log-uniform);
  5 % follow 50-400 accounts.
- **Spam campaigns** (``core.workload.spam_campaign``): fresh accounts (under 3 days) that
  follow-spam 20-200 users (half the campaigns; the others follow 0-10), have almost no followers, and post bursts of near-identical link posts
  within 30 minutes. Hard positives: 15 % of campaigns run on old, hijacked accounts with followers.
- **Features at posting time** are replayed in time order with the topology's own feature code:
  posting rate over the past hour, other accounts sharing an LSH band of the text's MinHash.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from core.workload import OpStream, WorkloadConfig, build_graph, spam_campaign, spam_ops
from models.moderation.features import Behaviour, band_keys, content, matrix, spam_row

HOUR_S = 3600.0


@dataclass(frozen=True)
class SpamDataConfig:
    """World size, campaign count and seed."""

    users: int = 1000
    campaigns: int = 128
    posts_per_user: float = 4.0
    seed: int = 11


@dataclass
class Dataset:
    """Feature rows, labels, and the author of each row (splits are by author)."""

    x: np.ndarray
    y: np.ndarray
    authors: list[str]


def _legit_posts(cfg: SpamDataConfig, rng: random.Random) -> tuple[list[tuple[float, str, dict, bool]], dict]:
    wl = WorkloadConfig(users=cfg.users, seed=cfg.seed)
    graph = build_graph(wl)
    followers = graph.followers()
    stream = OpStream(wl, graph, stream="spam-train")
    facts: dict[str, tuple[float, int, int]] = {}
    events: list[tuple[float, str, dict, bool]] = []
    for u in graph.users:
        new = rng.random() < 0.2  # new accounts post links too: account age alone must not decide
        following = rng.randint(50, 400) if rng.random() < 0.05 else len(graph.following[u])  # 5 % follow many
        facts[u] = (-(math.exp(rng.uniform(math.log(0.01), math.log(48))) if new
                      else rng.uniform(30 * 24, 1500 * 24)) * HOUR_S,
                    len(followers[u]), following)
        for _ in range(np_poisson(rng, cfg.posts_per_user)):
            events.append((rng.uniform(0, 72 * HOUR_S), u, dict(stream.post(u).body or {}), False))
        if rng.random() < 0.03:  # a promoter: a burst of similar posts linking to their own shop
            t0 = rng.uniform(0, 70 * HOUR_S)
            for i in range(rng.randint(3, 6)):
                text = f"new {rng.choice(('mugs', 'prints', 'shirts'))} in my shop this week https://{u}-shop.example/{i}"
                events.append((t0 + rng.uniform(0, 1800), u, {"text": text}, False))
    return events, facts


def np_poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw from a ``random.Random`` (Knuth; small means)."""
    limit, k, p = pow(2.718281828459045, -mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _spam_posts(cfg: SpamDataConfig, rng: random.Random, users: list[str],
                facts: dict) -> list[tuple[float, str, dict, bool]]:
    wl = WorkloadConfig(users=cfg.users, seed=cfg.seed)
    events = []
    for i in range(cfg.campaigns):
        follows = rng.randint(20, 200) if rng.random() < 0.5 else rng.randint(0, 10)  # half follow-spam
        camp = spam_campaign(wl, i, accounts=rng.randint(3, 12), posts_each=rng.randint(2, 8), follows=follows)
        ops = spam_ops(wl, camp, users)
        hijacked = rng.random() < 0.15
        t0 = rng.uniform(0, 70 * HOUR_S)
        for op in ops["register"]:  # (created at, followers, following): fresh accounts made just before t0
            facts[op.actor] = ((t0 - rng.uniform(500, 20000) * HOUR_S, rng.randint(5, 80), rng.randint(20, 200))
                               if hijacked else (t0 - rng.uniform(0.01, 72) * HOUR_S, np_poisson(rng, 0.5),
                                                 camp.follows))
        for op in ops["post"]:
            events.append((t0 + rng.uniform(0, 1800), op.actor, dict(op.body or {}), True))
    return events


def generate(cfg: SpamDataConfig) -> Dataset:
    """Replay legit posts and campaigns in time order and compute each post's features."""
    rng = random.Random(f"spam-data:{cfg.seed}")
    legit, facts = _legit_posts(cfg, rng)
    events = sorted(legit + _spam_posts(cfg, rng, list(facts), facts), key=lambda e: e[0])
    recent: dict[str, deque[float]] = defaultdict(deque)
    bands: dict[str, set[str]] = defaultdict(set)
    rows, labels, authors = [], [], []
    for t, author, body, spam in events:
        c = content(body["text"], body.get("links"))
        keys = band_keys(c.text)
        dup = set().union(*(bands[k] for k in keys)) - {author} if keys else set()
        for k in keys:
            bands[k].add(author)
        q = recent[author]
        q.append(t)
        while q and q[0] <= t - HOUR_S:
            q.popleft()
        created, fers, fing = facts[author]
        b = Behaviour((t - created) / HOUR_S, fers, fing, len(q), len(dup))
        rows.append(spam_row(c, b))
        labels.append(1 if spam else 0)
        authors.append(author)
    return Dataset(matrix(rows), np.asarray(labels, dtype=np.int32), authors)


def split(ds: Dataset, seed: int) -> tuple[Dataset, Dataset, Dataset]:
    """Train / validation / test (60/20/20) by author, so no account is in two splits."""
    rng = random.Random(f"split:{seed}")
    fold = {a: rng.random() for a in sorted(set(ds.authors))}
    parts = []
    for lo, hi in ((0.0, 0.6), (0.6, 0.8), (0.8, 1.01)):
        idx = [i for i, a in enumerate(ds.authors) if lo <= fold[a] < hi]
        parts.append(Dataset(ds.x[idx], ds.y[idx], [ds.authors[i] for i in idx]))
    return parts[0], parts[1], parts[2]
