"""Measure the packaged offensive-text model on a labelled corpus (``feedstream model evaluate offensive``).

No corpus ships with the project (third-party data stays out of git). The measurement in
docs/models.md used OLID v1.0's training file (Zampieri et al. 2019, OffensEval 2019 subtask A:
13,240 tweets labelled OFF/NOT), which ``alt-profanity-check`` was *not* trained on. Any file with a
text column (``tweet`` or ``text``) and a label column (``subtask_a`` OFF/NOT, or ``label`` 1/0) works:
TSV if the name ends in ``.tsv``, else CSV.

Reported: precision, recall, false-positive rate and the confusion matrix at the manifest's LIMIT
threshold, PR-AUC, what falls in the review band, a threshold sweep, the classifier's cost per
CPU-second, and two checks on the corpus's labels and a baseline:

- ``false_positives_with_profanity``: the share of the false positives at the threshold that contain a
  word on ``better-profanity``'s list. OLID's guidelines count profanity as OFF, so these are mostly
  annotation misses; the false-positive rate without them bounds how many clean posts are limited.
- ``baseline``: ``better-profanity``'s word list as a classifier (a dev dependency).
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.moderation.evaluation import metrics, pr_plot
from models.moderation.offensive import (
    OFFENSIVE_DIR,
    offensive_scores,
    offensive_version,
    operating_point,
)

EVALUATION_FILE = "evaluation.json"
SWEEP = (0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
BANDS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.0001)
TEXT_COLUMNS = ("tweet", "text")
LABEL_COLUMNS = ("subtask_a", "label")
POSITIVE = {"off", "1", "true", "offensive", "yes"}
NEGATIVE = {"not", "0", "false", "clean", "no"}


class CorpusError(ValueError):
    """The corpus file is missing or not in a shape we can read."""


@dataclass(frozen=True)
class Corpus:
    """Texts, their labels (1 = offensive) and where they came from."""

    texts: list[str]
    y: np.ndarray
    path: Path
    sha256: str
    undecodable_rows: int


def load_corpus(path: Path) -> Corpus:
    """Read a labelled corpus; undecodable bytes are replaced (OLID has a few) and counted."""
    if not path.is_file():
        raise CorpusError(f"no corpus at {path}: pass a labelled file, e.g. OLID's olid-training-v1.0.tsv "
                          "(docs/models.md, 'Offensive-text model')")
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    if delimiter == "\t":  # OLID: tabs separate, quotes are part of the tweets
        reader = csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.DictReader(text.splitlines())
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    text_col = next((c for c in TEXT_COLUMNS if c in fields), None)
    label_col = next((c for c in LABEL_COLUMNS if c in fields), None)
    if text_col is None or label_col is None:
        raise CorpusError(f"{path}: need a text column ({' or '.join(TEXT_COLUMNS)}) and a label column "
                          f"({' or '.join(LABEL_COLUMNS)}); found {fields}")
    texts, labels, bad = [], [], 0
    for n, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): v for k, v in row.items()}
        label = (row.get(label_col) or "").strip().lower()
        if label not in POSITIVE | NEGATIVE:
            raise CorpusError(f"{path}:{n}: label {label!r} is neither offensive ({sorted(POSITIVE)}) "
                              f"nor clean ({sorted(NEGATIVE)})")
        body = row.get(text_col) or ""
        bad += "\ufffd" in body
        texts.append(body)
        labels.append(label in POSITIVE)
    if not texts or all(labels) or not any(labels):
        raise CorpusError(f"{path}: need both offensive and clean rows (got {sum(labels)} of {len(labels)})")
    return Corpus(texts, np.array(labels, dtype=int), path, hashlib.sha256(raw).hexdigest(), bad)


def bands(scores: np.ndarray, y: np.ndarray, edges: Sequence[float] = BANDS) -> list[dict[str, Any]]:
    """Per score band ``[lo, hi)``: rows, share of the corpus, share labelled offensive."""
    out = []
    for lo, hi in itertools.pairwise(edges):
        m = (scores >= lo) & (scores < hi)
        out.append({"from": lo, "to": min(hi, 1.0), "rows": int(m.sum()), "share": round(float(m.mean()), 4),
                    "offensive_share": round(float(y[m].mean()), 4) if m.any() else None})
    return out


def review_band(scores: np.ndarray, y: np.ndarray, review_from: float, threshold: float) -> dict[str, Any]:
    """What the moderators' queue would receive: the band's share of posts and how many are offensive."""
    m = (scores >= review_from) & (scores < threshold)
    return {"from": review_from, "to": threshold, "share_of_posts": round(float(m.mean()), 4),
            "offensive_share": round(float(y[m].mean()), 4) if m.any() else None}


def false_positives_with_profanity(texts: Sequence[str], scores: np.ndarray, y: np.ndarray, threshold: float,
                                   has_profanity: Callable[[str], bool]) -> dict[str, Any]:
    """How many false positives at ``threshold`` contain listed profanity, and the FPR without them."""
    fps = [t for t, s, label in zip(texts, scores, y) if s >= threshold and not label]
    listed = sum(1 for t in fps if has_profanity(t))
    negatives = int((y == 0).sum())
    return {"false_positives": len(fps), "with_listed_profanity": listed,
            "share": round(listed / len(fps), 4) if fps else None,
            "false_positive_rate_without_them": round((len(fps) - listed) / max(1, negatives), 4)}


def _word_list() -> Callable[[str], bool] | None:
    try:
        from better_profanity import profanity
    except ImportError:  # a production install (no dev extras): the checks that need it are skipped
        return None
    profanity.load_censor_words()
    return profanity.contains_profanity  # type: ignore[no-any-return]


def _per_cpu_second(fn: Callable[[list[str]], object], texts: list[str]) -> float:
    t0 = time.process_time()
    fn(texts)
    return round(len(texts) / max(1e-9, time.process_time() - t0), 1)


def baseline(corpus: Corpus, scores: np.ndarray, threshold: float, listed: Callable[[str], bool],
             rows: int, seed: int = 17) -> dict[str, Any]:
    """The word list as a classifier on a seeded sample of ``rows`` texts (it checks about 40 texts per
    CPU-second), beside the packaged model at ``threshold`` on the same sample."""
    idx = np.random.default_rng(seed).permutation(len(corpus.texts))[:rows]
    t0 = time.process_time()
    pred = np.array([listed(corpus.texts[i]) for i in idx], dtype=float)
    cpu = time.process_time() - t0
    base, model = metrics(pred, corpus.y[idx], 0.5), metrics(scores[idx], corpus.y[idx], threshold)
    keep = ("precision", "recall", "false_positive_rate", "confusion")
    return {"name": "better-profanity word list", "sample_rows": len(idx), "sample_seed": seed,
            **{k: base[k] for k in keep}, "texts_per_cpu_second": round(len(idx) / max(1e-9, cpu), 1),
            "model_on_same_sample": {k: model[k] for k in keep}}


def evaluate(corpus_path: Path, out_dir: Path | None = None, png: Path | None = None,
             baseline_rows: int = 2000) -> dict[str, Any]:
    """Score the corpus; write ``evaluation.json`` (next to the manifest) and the PR curve PNG."""
    corpus = load_corpus(corpus_path)
    point = operating_point(out_dir)
    offensive_scores(["load the packaged model before timing"])
    t0 = time.process_time()
    scores = np.asarray(offensive_scores(corpus.texts))
    batched_cpu = time.process_time() - t0
    at = metrics(scores, corpus.y, point.threshold)
    result: dict[str, Any] = {
        "model": offensive_version(), "operating_point": {"threshold": point.threshold,
                                                          "review_from": point.review_from},
        "corpus": {"file": corpus.path.name, "sha256": corpus.sha256, "rows": len(corpus.texts),
                   "offensive_share": round(float(corpus.y.mean()), 4),
                   "rows_with_undecodable_bytes": corpus.undecodable_rows},
        **at, "limited_share": round(float((scores >= point.threshold).mean()), 4),
        "review_band": review_band(scores, corpus.y, point.review_from, point.threshold),
        "bands": bands(scores, corpus.y),
        "sweep": [{k: v for k, v in metrics(scores, corpus.y, t).items() if k not in ("rows", "positives", "pr_auc")}
                  for t in SWEEP],
        "texts_per_cpu_second": {"batch": round(len(corpus.texts) / max(1e-9, batched_cpu), 1),
                                 "one_by_one": _per_cpu_second(
                                     lambda ts: [offensive_scores([t]) for t in ts], corpus.texts[:1000])},
    }
    listed = _word_list()
    points = [(f"LIMIT at {point.threshold:g}", at["recall"], at["precision"])]
    if listed is not None:
        result["false_positives_with_profanity"] = false_positives_with_profanity(
            corpus.texts, scores, corpus.y, point.threshold, listed)
        result["baseline"] = baseline(corpus, scores, point.threshold, listed, baseline_rows)
        points.append(("better-profanity word list", result["baseline"]["recall"], result["baseline"]["precision"]))
    directory = out_dir or OFFENSIVE_DIR
    (directory / EVALUATION_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if png is not None:
        pr_plot(scores, corpus.y, at["pr_auc"], points,
                f"{result['model']} on {corpus.path.name} ({len(corpus.texts)} labelled texts)", png)
    return result
