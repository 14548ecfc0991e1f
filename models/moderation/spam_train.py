"""Train and evaluate the LightGBM spam model on synthetic campaigns (``feedstream model train|evaluate spam``).

The operating threshold is chosen on the validation split (the lowest score, at least 0.9, whose
false-positive rate there is at most ``max_fpr``) and written into the manifest with a review band below it; the
held-out test split gives precision, recall, PR-AUC and the confusion matrix at that threshold.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from models.moderation.evaluation import metrics, pr_plot
from models.moderation.features import SPAM_FEATURES
from models.moderation.spam import SPAM_DIR, load_spam
from models.moderation.spam_data import Dataset, SpamDataConfig, generate, split
from models.ranker import write_artifact

VERSION = "v1"
EVALUATION_FILE = "evaluation.json"
FLOOR = 0.9


def params(seed: int) -> dict[str, Any]:
    """Small, single-threaded, deterministic binary LightGBM."""
    return {"objective": "binary", "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 20,
            "num_threads": 1, "seed": seed, "deterministic": True, "force_row_wise": True, "verbosity": -1}


def pick_threshold(scores: np.ndarray, y: np.ndarray, max_fpr: float, floor: float = FLOOR) -> float:
    """The lowest threshold, at least ``floor``, whose false-positive rate on (scores, y) is at most ``max_fpr``.

    The floor is there because synthetic validation data is easier than the world: new legitimate
    accounts posting links score in 0.5-0.9 (bench.moderation); those go to the review queue instead.
    """
    neg = np.sort(scores[y == 0])[::-1]
    allowed = int(np.floor(max_fpr * len(neg)))
    above = neg[allowed] if allowed < len(neg) else 0.0  # the (allowed+1)-th highest negative score
    return float(min(0.99, max(floor, np.nextafter(above, 1.0))))


def train(cfg: SpamDataConfig, trees: int = 80, max_fpr: float = 0.002,
          version: str = VERSION) -> tuple[lgb.Booster, dict[str, Any], Dataset]:
    """Fit on the train split, pick the threshold on validation; ``(booster, manifest, test split)``."""
    t0 = time.perf_counter()
    tr, va, te = split(generate(cfg), cfg.seed)
    booster = lgb.train(params(cfg.seed), lgb.Dataset(tr.x, tr.y, feature_name=list(SPAM_FEATURES)),
                        num_boost_round=trees)
    threshold = pick_threshold(booster.predict(va.x), va.y, max_fpr)
    manifest = {
        "name": "spam", "version": version, "features": list(SPAM_FEATURES), "objective": "binary",
        "trees": trees, "params": params(cfg.seed), "threshold": round(threshold, 4),
        "review_from": round(threshold / 2, 4), "max_validation_fpr": max_fpr,
        "training": {**asdict(cfg), "data": "synthetic (models/moderation/spam_data.py, docs/models.md)",
                     "train_rows": len(tr.y), "validation_rows": len(va.y), "test_rows": len(te.y),
                     "spam_share": round(float(tr.y.mean()), 4), "total_s": round(time.perf_counter() - t0, 2)},
        "metrics": {"test": metrics(booster.predict(te.x), te.y, threshold)},
        "lightgbm_version": lgb.__version__, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return booster, manifest, te


def write(directory: Path, booster: lgb.Booster, manifest: dict[str, Any]) -> Path:
    """Write the artifact (model.txt, manifest.json)."""
    return write_artifact(directory, booster, manifest)


def evaluate(artifact: Path | None, cfg: SpamDataConfig, png: Path | None) -> dict[str, Any]:
    """Evaluate the artifact on the held-out split of ``cfg``'s data; write evaluation.json and a PR curve."""
    model = load_spam(artifact)
    _, _, te = split(generate(cfg), cfg.seed)
    scores = model.scores(te.x.tolist())
    other = generate(replace(cfg, seed=cfg.seed + 1))  # a whole world the model never saw (other graph, campaigns)
    result = {"model": model.version, "data": "synthetic (seeded campaigns; see docs/models.md)",
              "config": asdict(cfg), **metrics(scores, te.y, model.threshold), "review_from": model.review_from,
              "fresh_world": {"seed": cfg.seed + 1,
                              **metrics(model.scores(other.x.tolist()), other.y, model.threshold)}}
    directory = artifact or SPAM_DIR
    (directory / EVALUATION_FILE).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if png is not None:
        pr_plot(scores, te.y, result["pr_auc"], [(f"threshold {model.threshold:.3f}", result["recall"],
                                                      result["precision"])],
                f"{result['model']} on synthetic held-out data", png)
    return result
