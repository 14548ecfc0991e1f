"""Relevance of the post query on a fixed corpus with known answers (precision@10 above a floor).

The corpus is generated from a fixed seed: 6 topics x 40 posts. A post of topic T draws most of
its words from T's vocabulary (sometimes inflected: "recipes", "orbiting"), two from another
topic's, plus filler. A query is 3 base words of T's vocabulary (someone looking for posts on a
topic); its relevant posts are those of T. Single-word queries are not scored: a stray mention is
as much a match for one word as a post on the topic. The documents go through the search
topology's own ``post_write`` and the store's bulk write; the query is the API's
(:func:`stores.search.post_query`).
"""

from __future__ import annotations

import random
import uuid

import pytest

from core.settings import Settings
from stores import search as idx
from topologies.search.logic import post_write

TOPICS = {
    "cooking": "recipe oven flour garlic simmer bake dough sauce chef kitchen spice roast",
    "football": "goal striker penalty referee midfield league coach stadium tackle match keeper offside",
    "astronomy": "orbit telescope galaxy nebula planet comet eclipse star asteroid lunar solar cosmos",
    "programming": "compiler function variable debug python rust library thread memory syntax commit deploy",
    "gardening": "soil seed compost prune tomato bloom shovel garden weed harvest mulch sprout",
    "music": "guitar chord melody rhythm drum tempo concert album lyric chorus piano verse",
}
INFLECT = {"recipe": "recipes", "orbit": "orbiting", "bake": "baking", "goal": "goals", "planet": "planets",
           "function": "functions", "seed": "seeds", "chord": "chords", "compile": "compiled", "bloom": "blooming"}
FILLER = ["today", "really", "quite", "great", "some", "just", "very", "much", "also", "about"]
PER_TOPIC = 40
FLOOR = 0.8


def corpus(seed: int = 7) -> list[tuple[int, str, str]]:
    rng = random.Random(seed)
    vocab = {t: w.split() for t, w in TOPICS.items()}
    docs, pid = [], 1
    for topic, words in vocab.items():
        others = [t for t in vocab if t != topic]
        for _ in range(PER_TOPIC):
            own = [INFLECT.get(w, w) if rng.random() < 0.3 else w for w in rng.sample(words, 6)]
            stray = rng.sample(vocab[rng.choice(others)], 2)
            text = own + stray + rng.sample(FILLER, 3)
            rng.shuffle(text)
            docs.append((pid, topic, " ".join(text)))
            pid += 1
    return docs


def queries(seed: int = 11) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for topic, words in TOPICS.items():
        w = words.split()
        out += [(topic, " ".join(rng.sample(w, 3))) for _ in range(3)]
    return out


@pytest.fixture(scope="module")
def indexed(search_stack: Settings):
    os_ = idx.client(search_stack.opensearch_url)
    alias = f"fs-relevance-{uuid.uuid4().hex[:8]}"
    index = idx.ensure_alias(os_, alias)
    docs = corpus()
    writes = [post_write("PostCreated", {"post_id": pid, "author_id": f"a{pid % 17}", "text": text,
                                         "hashtags": [], "visibility": "PUBLIC", "occurred_at": 1_000 + pid}, None)
              for pid, _, text in docs]
    stats = idx.apply(os_, index, writes, refresh=True)
    assert stats.applied == len(docs) and not stats.errors
    yield os_, alias, {pid: topic for pid, topic, _ in docs}
    os_.indices.delete(index=index)


def test_precision_at_10_is_above_the_floor(indexed) -> None:
    os_, alias, topic_of = indexed
    reader = idx.Reader("someone")
    precisions = []
    for topic, q in queries():
        hits = os_.search(index=alias, body=idx.post_query(q, reader, limit=10))["hits"]["hits"]
        top = [h["_source"]["post_id"] for h in hits]
        precisions.append(sum(topic_of[p] == topic for p in top) / 10)
    p10 = sum(precisions) / len(precisions)
    print(f"precision@10 over {len(precisions)} queries: {p10:.3f} (floor {FLOOR})")
    assert p10 >= FLOOR, precisions


def test_an_inflected_form_matches_its_base_word(indexed) -> None:
    os_, alias, _ = indexed
    hits = os_.search(index=alias, body=idx.post_query("recipe", idx.Reader("x"), limit=50))["hits"]["hits"]
    texts = [h["_source"]["text"].split() for h in hits]
    assert any("recipes" in t and "recipe" not in t for t in texts)  # found through the stemmed field
