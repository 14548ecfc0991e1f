"""Unit tests of the feed ranker: features, artifact checks, tiny seeded training, serving behaviour."""

from __future__ import annotations

import json
import math
import random
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from core.ids import EPOCH_MS, SEQ_BITS
from models.data import SynthConfig, generate
from models.evaluate import baselines, booster_scorer, mean_ndcg, ndcg_at_k
from models.features import FEATURE_NAMES, AuthorContext, item_features, page_matrix
from models.ranker import (
    ArtifactError,
    LightGBMRanker,
    load_ranker,
    read_manifest,
    select_ranker,
    write_artifact,
)
from models.ranking import EngagementRecencyRanker, Ranker
from models.train import train
from serving.circuit import OPEN, Breaker
from serving.feed.ranker import chronological, rank_or_fallback

NOW = 1_767_225_600_000 + 10 * 3_600_000
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def pid_at(ms: int, seq: int = 0) -> int:
    return ((ms - EPOCH_MS) << SEQ_BITS) | seq


def item(age_h: float, author: str = "a", seq: int = 0, **kw):
    base = {"post_id": pid_at(NOW - int(age_h * 3_600_000), seq), "author_id": author, "text": "hi #x",
            "media": [], "links": [], "hashtags": ["x"], "counts": {"likes": 1, "comments": 0, "shares": 0,
                                                                    "reactions": {}}, "affinity": 0}
    return {**base, **kw}


@pytest.fixture(scope="module")
def tiny():
    cfg = SynthConfig(users=80, seed=3, sessions_per_reader=4)
    booster, manifest = train(cfg, trees=20, leaves=7, version="t1")
    return cfg, booster, manifest


# -- features -------------------------------------------------------------------------------
def test_features_follow_the_declared_order_and_values():
    it = item(2.5, text="x" * 42, hashtags=["a", "b"], links=["https://l"],
              media=[{"kind": "IMAGE"}, {"kind": "VIDEO"}, {"kind": "IMAGE"}],
              counts={"likes": 3, "comments": 2, "shares": 1, "reactions": {"LOVE": 2, "WOW": 1}}, affinity=4)
    row = item_features(it, NOW, AuthorContext(followers=99, is_friend=True))
    assert len(row) == len(FEATURE_NAMES)
    expect = {"age_h": 2.5, "likes": 3, "comments": 2, "shares": 1, "reactions": 3, "affinity": 4, "n_images": 2,
              "n_videos": 1, "text_len": 42, "n_hashtags": 2, "n_links": 1, "author_followers_log": math.log1p(99),
              "is_friend": 1.0}
    assert {n: row[COL[n]] for n in FEATURE_NAMES} == pytest.approx(expect)


def test_missing_values_are_nan_and_future_posts_have_age_zero():
    row = item_features({"post_id": pid_at(NOW + 5000), "author_id": "a"}, NOW)
    assert row[COL["age_h"]] == 0.0
    for n in ("likes", "affinity", "author_followers_log", "is_friend"):
        assert math.isnan(row[COL[n]]), n


def test_page_matrix_is_deterministic_and_row_order_follows_items():
    rng = random.Random(5)
    items = [item(rng.uniform(0, 40), author=f"a{i % 3}", seq=i, affinity=i,
                  counts={"likes": rng.randint(0, 9), "comments": i, "shares": 0, "reactions": {}})
             for i in range(25)]
    ctx = {f"a{i}": AuthorContext(i * 10, i == 1) for i in range(3)}
    m1, m2 = page_matrix(items, NOW, ctx), page_matrix([dict(x) for x in items], NOW, dict(ctx))
    assert m1.shape == (25, len(FEATURE_NAMES)) and m1.dtype == np.float64
    np.testing.assert_array_equal(m1, m2)
    perm = list(range(25))
    rng.shuffle(perm)
    np.testing.assert_array_equal(page_matrix([items[i] for i in perm], NOW, ctx), m1[perm])


def test_synthetic_data_is_seeded_and_split_by_reader():
    cfg = SynthConfig(users=60, seed=11, sessions_per_reader=2)
    (a_tr, a_te), (b_tr, _) = generate(cfg), generate(cfg)
    xa, ya, ga = a_tr.arrays()
    xb, yb, gb = b_tr.arrays()
    np.testing.assert_array_equal(xa, xb)
    assert ya.tolist() == yb.tolist() and ga == gb and 0 < ya.mean() < 1
    assert not {s.reader for s in a_tr.sessions} & {s.reader for s in a_te.sessions}
    other, _ = generate(SynthConfig(users=60, seed=12, sessions_per_reader=2))
    assert other.arrays()[0].shape != xa.shape or not np.array_equal(other.arrays()[0], xa)


# -- metrics --------------------------------------------------------------------------------
def test_ndcg_perfect_worst_and_undefined():
    assert ndcg_at_k([0, 1, 0], [0.1, 0.9, 0.2], [1, 2, 3]) == 1.0
    worst = ndcg_at_k([1, 0, 0], [0.0, 0.5, 0.9], [1, 2, 3])
    assert worst == pytest.approx(1 / math.log2(4))
    assert ndcg_at_k([0, 0], [1.0, 2.0], [1, 2]) is None
    assert ndcg_at_k([1, 0], [1.0, 1.0], [1, 2]) == pytest.approx(1 / math.log2(3)), "ties: newest first"


# -- training -------------------------------------------------------------------------------
def test_tiny_seeded_training_beats_random_and_is_reproducible(tiny):
    cfg, booster, manifest = tiny
    _, test = generate(cfg)
    model = mean_ndcg(test.sessions, booster_scorer(booster))
    rand = mean_ndcg(test.sessions, baselines(seed=1)["random"])
    assert model > rand + 0.05, (model, rand)
    again, _ = train(cfg, trees=20, leaves=7, version="t1")
    assert again.model_to_string() == booster.model_to_string()
    assert manifest["features"] == list(FEATURE_NAMES) and manifest["training"]["seed"] == 3
    assert manifest["metrics"]["ndcg@10_test"]["lightgbm-t1"] == pytest.approx(model)


def test_artifact_round_trip_and_protocol(tiny, tmp_path):
    _, booster, manifest = tiny
    write_artifact(tmp_path, booster, manifest)
    calls = []

    def ctx(reader, authors):
        calls.append((reader, authors))
        return {a: AuthorContext(5, False) for a in authors}

    r = load_ranker(tmp_path, context=ctx)
    assert isinstance(r, Ranker) and r.name == "lightgbm-t1"
    items = [item(h, author=f"a{i % 2}", seq=i) for i, h in enumerate((0.1, 3, 7, 20, 30))]
    s = r.scores("me", items)
    assert len(s) == len(items) and all(math.isfinite(x) for x in s)
    assert calls == [("me", ["a0", "a1"])], "one context fetch per page, authors deduplicated"
    assert r.scores("me", []) == []
    expected = booster.predict(page_matrix(items, int(time.time() * 1000), ctx("me", ["a0", "a1"])))
    assert s == pytest.approx(expected.tolist(), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("features,needle", [
    (list(FEATURE_NAMES[:-1]), "missing ['is_friend']"),
    (list(FEATURE_NAMES) + ["bogus"], "unexpected ['bogus']"),
    ([FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:]], "another order"),
])
def test_manifest_feature_mismatch_is_refused(tiny, tmp_path, features, needle):
    _, booster, manifest = tiny
    write_artifact(tmp_path, booster, {**manifest, "features": features})
    with pytest.raises(ArtifactError, match="does not match") as exc:
        load_ranker(tmp_path)
    assert needle in str(exc.value)


def test_missing_or_tampered_artifact_is_refused(tiny, tmp_path):
    with pytest.raises(ArtifactError, match="no ranker artifact"):
        load_ranker(tmp_path / "nothing")
    _, booster, manifest = tiny
    write_artifact(tmp_path, booster, manifest)
    (tmp_path / "model.txt").write_text(booster.model_to_string().replace("Tree=0", "Tree=00", 1))
    with pytest.raises(ArtifactError, match="sha256"):
        load_ranker(tmp_path)


def test_select_ranker(tmp_path, monkeypatch):
    heur = EngagementRecencyRanker()
    assert select_ranker("heuristic", None, heur) is heur
    assert select_ranker("auto", None, heur).name.startswith("lightgbm-")  # the committed artifact
    monkeypatch.setattr("models.ranker.ARTIFACT_DIR", tmp_path / "none")
    assert select_ranker("auto", None, heur) is heur
    with pytest.raises(ArtifactError):
        select_ranker("lightgbm", None, heur)
    with pytest.raises(ValueError, match="choose from"):
        select_ranker("xgboost", None, heur)


def test_committed_artifact_beats_both_baselines():
    m = read_manifest()
    ndcg = m["metrics"]["ndcg@10_test"]
    model = ndcg[f"lightgbm-{m['version']}"]
    assert model > ndcg["engagement-recency-v1"] and model > ndcg["chronological"] > ndcg["random"]
    assert m["lightgbm_version"] and m["created_at"] and m["training"]["train_rows"] > 1000
    assert json.loads(json.dumps(m)) == m


# -- serving fallback -----------------------------------------------------------------------
class ExplodingBooster:
    """Stands in for a corrupt model: right shape, raises on predict."""

    def __init__(self, real):
        self.real = real

    def num_feature(self):
        return self.real.num_feature()

    def predict(self, x, **kw):
        raise RuntimeError("model exploded")


@pytest.mark.parametrize("kind,reason", [("raise", "model exploded"), ("slow", "timed out")])
def test_failing_or_slow_model_falls_back_to_chronological(tiny, kind, reason):
    _, booster, manifest = tiny
    if kind == "raise":
        ranker = LightGBMRanker(ExplodingBooster(booster), manifest)
    else:
        ranker = LightGBMRanker(booster, manifest, context=lambda r, a: time.sleep(0.5) or {})
    items = [item(h, seq=i) for i, h in enumerate((5, 0.5, 2))]
    b = Breaker("ranker", failures=2, reset_s=60)
    with ThreadPoolExecutor(2) as pool:
        out = rank_or_fallback(ranker, b, pool, "r", items, timeout_s=0.05)
        assert out.algorithm == "chronological" and reason in out.fallback_reason
        assert out.items == chronological(items) and out.ranker == "lightgbm-t1"
        rank_or_fallback(ranker, b, pool, "r", items, timeout_s=0.05)
        assert b.state == OPEN
        healthy = LightGBMRanker(booster, manifest)
        again = rank_or_fallback(healthy, b, pool, "r", items, timeout_s=1)
        assert again.fallback_reason == "ranker circuit open"
        ok = rank_or_fallback(healthy, Breaker("fresh"), pool, "r", items, timeout_s=1)
        assert ok.algorithm == "ranked" and sorted(i["post_id"] for i in ok.items) == sorted(
            i["post_id"] for i in items)


@pytest.mark.parametrize("env,expect", [(None, "lightgbm-"), ("auto", "lightgbm-"), ("lightgbm", "lightgbm-"),
                                        ("heuristic", "engagement-recency")])
def test_read_engines_pick_the_ranker_from_the_environment(monkeypatch, env, expect):
    import redis

    from core.settings import Settings
    from serving.feed.engines import default_ranker

    if env is None:
        monkeypatch.delenv("FEEDSTREAM_RANKER", raising=False)
    else:
        monkeypatch.setenv("FEEDSTREAM_RANKER", env)
    r = redis.Redis(port=1)  # never contacted: the author context is only fetched when a page is ranked
    assert default_ranker(Settings(), r).name.startswith(expect)
