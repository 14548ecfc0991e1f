"""Synthetic training data: reader sessions over the seeded workload graph, labelled by a documented
engagement-propensity model (there is no real interaction log yet).

World: :func:`core.workload.build_graph` (power-law follows) with posts written by
:meth:`core.workload.OpStream.post` at uniform times over ``horizon_h`` hours. Friends are mutual
follows. Each post has a latent quality ``q ~ N(0, 1)``; each (reader, author) pair a latent tie
``t ~ Gamma(0.5, 1)`` (x3 for friends). What the read API would see is noisy: engagement counts
``~ Poisson(0.04 * followers**0.7 * e**(0.8 q) * (1 - e**(-age/8h)) * media boost)`` and affinity
``~ Poisson(2 t)``. A session is a reader at a random time with their followees' newest
``page`` posts of the last 48 h; an item is engaged with probability ``sigmoid(z)``::

    z = -2.5 + 1.1 log1p(t) + 0.9 q - 0.9 log1p(age_h / 4) + 0.5 image + 0.9 video
        + 0.15 log1p(followers) + 0.7 friend + 0.3 [40 <= len(text) <= 90] + N(0, 0.5)

Everything is drawn from ``numpy.random.default_rng(seed)`` and ``random.Random``-seeded workload
streams, so the same :class:`SynthConfig` yields the same data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.ids import EPOCH_MS, SEQ_BITS
from core.workload import OpStream, WorkloadConfig, build_graph
from models.features import AuthorContext, page_matrix

BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: synthetic time starts here, not at the wall clock
TAG = re.compile(r"#(\w+)")


@dataclass(frozen=True)
class SynthConfig:
    """Size and seed of a synthetic interaction log."""

    users: int = 400
    seed: int = 7
    posts_per_user: float = 8.0
    sessions_per_reader: int = 3
    page: int = 50
    horizon_h: float = 72.0
    test_fraction: float = 0.2


@dataclass
class Session:
    """One reader's feed page at ``now_ms``: items as the read API hydrates them, and labels."""

    reader: str
    now_ms: int
    items: list[dict[str, Any]]
    contexts: dict[str, AuthorContext]
    labels: list[int]


@dataclass
class Split:
    """Sessions plus their stacked feature matrix, labels and group sizes."""

    sessions: list[Session] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """``(X, y, group sizes)`` in session order."""
        xs = [page_matrix(s.items, s.now_ms, s.contexts) for s in self.sessions]
        y = np.concatenate([np.asarray(s.labels, dtype=np.int32) for s in self.sessions])
        return np.vstack(xs), y, [len(s.items) for s in self.sessions]

    @property
    def rows(self) -> int:
        """Number of items over all sessions."""
        return sum(len(s.items) for s in self.sessions)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def generate(cfg: SynthConfig) -> tuple[Split, Split]:
    """``(train, test)`` sessions, split by reader."""
    wl = WorkloadConfig(users=cfg.users, seed=cfg.seed, hashtags=60)
    graph = build_graph(wl)
    followers = {u: len(f) for u, f in graph.followers().items()}
    rng = np.random.default_rng(cfg.seed)
    ops = OpStream(wl, graph, stream="models")
    horizon_ms = int(cfg.horizon_h * 3_600_000)
    by_author: dict[str, list[dict[str, Any]]] = {u: [] for u in graph.users}
    quality: dict[int, float] = {}
    times = np.sort(rng.integers(0, horizon_ms, size=round(cfg.users * cfg.posts_per_user)))
    for seq, t in enumerate(times):
        op = ops.post()
        body = dict(op.body or {})
        pid = ((BASE_MS + int(t) - EPOCH_MS) << SEQ_BITS) | (seq & 0xFFF)
        by_author[op.actor].append({"post_id": pid, "author_id": op.actor, "text": body["text"],
                                    "media": body.get("media", []), "links": body.get("links", []),
                                    "hashtags": TAG.findall(body["text"]), "t": int(t)})
        quality[pid] = float(rng.normal())
    ties: dict[tuple[str, str], float] = {}
    readers = [u for u in graph.users if graph.following[u]]
    test_readers = set(rng.permutation(readers)[: round(len(readers) * cfg.test_fraction)].tolist())
    train, test = Split(), Split()
    for reader in readers:
        followees = sorted(graph.following[reader])
        friends = {a for a in followees if reader in graph.following[a]}
        for _ in range(cfg.sessions_per_reader):
            now = int(rng.integers(horizon_ms // 3, horizon_ms))
            pool = [p for a in followees for p in by_author[a] if now - 48 * 3_600_000 <= p["t"] <= now]
            pool = sorted(pool, key=lambda p: -p["post_id"])[: cfg.page]
            if len(pool) < 2:
                continue
            items, labels = [], []
            for p in pool:
                a = p["author_id"]
                tie = ties.setdefault((reader, a), float(rng.gamma(0.5, 1.0)) * (3.0 if a in friends else 1.0))
                age_h = (now - p["t"]) / 3_600_000
                kinds = [m["kind"] for m in p["media"]]
                img, vid = "IMAGE" in kinds, "VIDEO" in kinds
                lam = (0.04 * followers[a] ** 0.7 * math.exp(0.8 * quality[p["post_id"]])
                       * (1 - math.exp(-age_h / 8)) * (1.6 if kinds else 1.0))
                counts = {"likes": int(rng.poisson(lam)), "comments": int(rng.poisson(0.3 * lam)),
                          "shares": int(rng.poisson(0.1 * lam)),
                          "reactions": {"LOVE": int(rng.poisson(0.4 * lam))}}
                item = {k: v for k, v in p.items() if k != "t"}
                items.append({**item, "counts": counts, "affinity": int(rng.poisson(2 * tie))})
                z = (-2.5 + 1.1 * math.log1p(tie) + 0.9 * quality[p["post_id"]] - 0.9 * math.log1p(age_h / 4)
                     + 0.5 * img + 0.9 * vid + 0.15 * math.log1p(followers[a]) + 0.7 * (a in friends)
                     + 0.3 * (40 <= len(p["text"]) <= 90) + float(rng.normal(0, 0.5)))
                labels.append(int(rng.random() < _sigmoid(z)))
            ctx = {a: AuthorContext(followers[a], a in friends) for a in {it["author_id"] for it in items}}
            (test if reader in test_readers else train).sessions.append(
                Session(reader, BASE_MS + now, items, ctx, labels))
    return train, test
