"""Offline evaluation of the interest feed (``GET /v1/users/{id}/discover``) against a popularity baseline.

A seeded synthetic world with latent interests: ``topics`` topics, each with its own hashtags and
words; every user has a latent mix of 1-2 topics, writes posts on them and likes posts drawn from
them (weighted by the post's popularity, plus some random likes). Each user's likes are split in
time: the first ``train`` share builds the interest profile (the ``engaged`` list of the interest
document, as the search topology keeps it) and the popularity counts; the later likes of posts by
authors the user does not follow are the held-out answers. For each user, the interest query
(:func:`stores.search.interest_query`, the one the API runs) and the baseline
(:func:`stores.search.popular_query`) each return 20 posts; recall@20 and NDCG@10 are averaged.

Runs against any OpenSearch (a scratch index, deleted at the end); quality only, no timing::

    python -m bench.interest_eval --url http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field

from stores import search as idx
from topologies.search.logic import popularity, post_write


@dataclass
class World:
    posts: dict[int, tuple[str, int, str, list[str]]] = field(default_factory=dict)  # id -> author, topic, text, tags
    follows: dict[str, set[str]] = field(default_factory=dict)
    train: dict[str, list[int]] = field(default_factory=dict)
    test: dict[str, set[int]] = field(default_factory=dict)
    likes: Counter[int] = field(default_factory=Counter)


def build(seed: int = 5, users: int = 300, topics: int = 12, posts_per_user: int = 6, likes_per_user: int = 40,
          train: float = 0.7, noise: float = 0.15) -> World:
    """The synthetic world (deterministic for a seed)."""
    rng = random.Random(seed)
    vocab = [[f"t{t}w{i}" for i in range(15)] for t in range(topics)]
    tags = [[f"tag{t}x{i}" for i in range(4)] for t in range(topics)]
    filler = [f"common{i}" for i in range(40)]
    uids = [f"u{i:04d}" for i in range(users)]
    mix = {u: rng.sample(range(topics), rng.choice((1, 2))) for u in uids}
    w = World()
    pid = 1
    by_topic: dict[int, list[int]] = {t: [] for t in range(topics)}
    for u in uids:
        for _ in range(posts_per_user):
            t = rng.choice(mix[u])
            text = " ".join(rng.sample(vocab[t], 4) + rng.sample(filler, 4))
            w.posts[pid] = (u, t, text, rng.sample(tags[t], rng.choice((1, 2))))
            by_topic[t].append(pid)
            pid += 1
    appeal = {p: rng.paretovariate(1.5) for p in w.posts}  # some posts are liked far more than others
    for u in uids:
        w.follows[u] = set(rng.sample(uids, 8)) - {u}
    for u in uids:
        seen: list[int] = []
        while len(seen) < likes_per_user:
            pool = list(w.posts) if rng.random() < noise else by_topic[rng.choice(mix[u])]
            p = rng.choices(pool, weights=[appeal[x] for x in pool])[0]
            if p not in seen and w.posts[p][0] != u:
                seen.append(p)
        cut = int(len(seen) * train)
        w.train[u] = seen[:cut]
        w.likes.update(seen[:cut])
        w.test[u] = {p for p in seen[cut:] if w.posts[p][0] not in w.follows[u]}
    return w


def ndcg_at(ranked: list[int], relevant: set[int], k: int) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(ranked[:k]) if p in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def evaluate(url: str, world: World, *, k: int = 20) -> dict[str, float]:
    os_ = idx.client(url, timeout_s=60)
    alias = f"fs-interest-eval-{uuid.uuid4().hex[:8]}"
    index = idx.ensure_alias(os_, alias)
    try:
        writes = []
        for pid, (author, _, text, tags) in world.posts.items():
            w = post_write("PostCreated", {"post_id": pid, "author_id": author, "text": text, "hashtags": tags,
                                           "visibility": "PUBLIC", "occurred_at": 10_000 + pid}, None)
            w.doc["popularity"] = popularity(world.likes[pid], 0, 0, None)
            writes.append(w)
        interests = [(u, p, True) for u, ps in world.train.items() for p in ps]
        idx.apply(os_, index, writes, None, interests, refresh=True)
        sums: Counter[str] = Counter()
        n = 0
        for u, answers in world.test.items():
            if not answers:
                continue
            reader = idx.Reader(u, following=frozenset(world.follows[u]))
            engaged = os_.get(index=alias, id=idx.interest_doc_id(u))["_source"]["engaged"]
            like = [idx.post_doc_id(int(p)) for p in engaged[-50:]]
            hits = os_.search(index=alias, body=idx.interest_query(reader, like, since_ms=0, limit=k,
                                                                   exclude_ids=like))["hits"]["hits"]
            interest = [h["_source"]["post_id"] for h in hits]
            seen = {int(p) for p in engaged}
            pop_hits = os_.search(index=alias, body=idx.popular_query(reader, since_ms=0, limit=k + len(seen)))
            popular = [h["_source"]["post_id"] for h in pop_hits["hits"]["hits"]
                       if h["_source"]["post_id"] not in seen][:k]
            for name, ranked in (("interest", interest), ("popular", popular)):
                sums[f"{name}_recall@{k}"] += len(set(ranked) & answers) / len(answers)
                sums[f"{name}_ndcg@10"] += ndcg_at(ranked, answers, 10)
            n += 1
        return {key: v / n for key, v in sorted(sums.items())} | {"users": float(n)}
    finally:
        os_.indices.delete(index=index, ignore_unavailable=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:9200")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--users", type=int, default=300)
    a = ap.parse_args(argv)
    for key, value in evaluate(a.url, build(seed=a.seed, users=a.users)).items():
        print(f"{key}: {value:.3f}")


if __name__ == "__main__":
    main()
