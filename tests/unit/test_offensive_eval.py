"""The offensive model's operating point (manifest) and its evaluation on a labelled corpus."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.moderation.classify import Classifier
from models.moderation.offensive import OFFENSIVE_DIR, offensive_version, operating_point
from models.moderation.offensive_eval import (
    CorpusError,
    bands,
    evaluate,
    false_positives_with_profanity,
    load_corpus,
    review_band,
)

pytestmark = pytest.mark.unit

CLEAN = ["lovely sunset at the beach today", "shipping the new release of our stream processor",
         "coffee with the team before the match", "reading a book about trains on the train",
         "the garden is full of tomatoes this year"]
ABUSE = ["you are a fucking idiot", "shut up you stupid bitch", "go to hell you piece of shit"]


def _olid(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "mini.tsv"
    lines = ["id\ttweet\tsubtask_a\tsubtask_b\tsubtask_c"]
    lines += [f"{i}\t{text}\t{label}\tNULL\tNULL" for i, (text, label) in enumerate(rows)]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"9\tbroken \xe2 bytes\tNOT\tNULL\tNULL\n")
    return path


def test_committed_operating_point_is_what_the_classifier_uses() -> None:
    point = operating_point()
    manifest = json.loads((OFFENSIVE_DIR / "manifest.json").read_text())
    assert (point.threshold, point.review_from) == (manifest["threshold"], manifest["review_from"])
    assert point.model == offensive_version()  # re-measure when the package changes
    clf = Classifier()
    assert (clf.th.offensive, clf.th.offensive_review) == (point.threshold, point.review_from)


def test_operating_point_refuses_an_inverted_band(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"model": offensive_version(), "threshold": 0.4,
                                                        "review_from": 0.6}))
    with pytest.raises(ValueError, match="review_from <= threshold"):
        operating_point(tmp_path)
    with pytest.raises(ValueError, match="restore it from git"):
        operating_point(tmp_path / "missing")


def test_load_corpus_reads_olid_and_counts_undecodable_rows(tmp_path: Path) -> None:
    corpus = load_corpus(_olid(tmp_path, [(t, "NOT") for t in CLEAN] + [(t, "OFF") for t in ABUSE]))
    assert len(corpus.texts) == 9 and corpus.y.tolist() == [0] * 5 + [1] * 3 + [0]
    assert corpus.undecodable_rows == 1 and len(corpus.sha256) == 64


def test_load_corpus_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no corpus"):
        load_corpus(tmp_path / "absent.tsv")
    (tmp_path / "c.csv").write_text("body,label\nhello,0\n")
    with pytest.raises(CorpusError, match="text column"):
        load_corpus(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("text,label\nhello,maybe\n")
    with pytest.raises(CorpusError, match=r"d.csv:2: label 'maybe'"):
        load_corpus(tmp_path / "d.csv")
    (tmp_path / "e.csv").write_text("text,label\nhello,0\nbye,0\n")
    with pytest.raises(CorpusError, match="both offensive and clean"):
        load_corpus(tmp_path / "e.csv")


def test_bands_review_band_and_profanity_false_positives() -> None:
    scores = np.array([0.05, 0.6, 0.7, 0.9, 0.95, 0.99])
    y = np.array([0, 0, 1, 1, 0, 0])
    rows = bands(scores, y, (0.0, 0.5, 0.85, 1.0001))
    assert [r["rows"] for r in rows] == [1, 2, 3] and rows[1]["offensive_share"] == 0.5
    assert review_band(scores, y, 0.5, 0.85) == {"from": 0.5, "to": 0.85, "share_of_posts": 0.3333,
                                                 "offensive_share": 0.5}
    texts = ["a", "b", "c", "d", "damn it", "fine"]
    fp = false_positives_with_profanity(texts, scores, y, 0.85, lambda t: "damn" in t)
    assert fp == {"false_positives": 2, "with_listed_profanity": 1, "share": 0.5,
                  "false_positive_rate_without_them": 0.25}


def test_evaluate_writes_metrics_at_the_manifest_threshold_and_a_png(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text((OFFENSIVE_DIR / "manifest.json").read_text())
    corpus = _olid(tmp_path, [(t, "NOT") for t in CLEAN] + [(t, "OFF") for t in ABUSE])
    png = tmp_path / "pr.png"
    result = evaluate(corpus, tmp_path, png, baseline_rows=9)
    assert result["confusion"] == {"tn": 6, "fp": 0, "fn": 0, "tp": 3}  # these abuse lines score >= 0.85
    assert result["precision"] == result["recall"] == 1.0 and result["threshold"] == operating_point().threshold
    assert result["corpus"]["rows"] == 9 and result["limited_share"] == round(3 / 9, 4)
    assert result["baseline"]["sample_rows"] == 9 and result["baseline"]["recall"] == 1.0
    assert json.loads((tmp_path / "evaluation.json").read_text())["pr_auc"] == result["pr_auc"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
