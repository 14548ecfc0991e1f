"""Train the LightGBM lambdarank feed ranker on synthetic sessions and write a versioned artifact.

``python -m models.train [--users N] [--seed S] [--trees T] [--out DIR]``; query groups are reader
sessions, the split is by reader, ``num_threads=1``; the manifest records data, params and metrics.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb

from models.data import SynthConfig, generate
from models.evaluate import ndcg_table
from models.features import FEATURE_NAMES
from models.ranker import ARTIFACT_DIR, write_artifact

VERSION = "v1"


def params(seed: int, leaves: int = 15) -> dict[str, Any]:
    """LightGBM parameters: lambdarank, small, single-threaded, deterministic."""
    return {"objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [10], "learning_rate": 0.1,
            "num_leaves": leaves, "min_data_in_leaf": 20, "feature_fraction": 1.0, "num_threads": 1,
            "seed": seed, "deterministic": True, "force_row_wise": True, "verbosity": -1}


def train(cfg: SynthConfig, trees: int = 50, leaves: int = 15,
          version: str = VERSION) -> tuple[lgb.Booster, dict[str, Any]]:
    """Generate data for ``cfg``, fit the ranker, evaluate it; ``(booster, manifest)``."""
    t0 = time.perf_counter()
    tr, te = generate(cfg)
    x, y, groups = tr.arrays()
    p = params(cfg.seed, leaves)
    ds = lgb.Dataset(x, y, group=groups, feature_name=list(FEATURE_NAMES), free_raw_data=True)
    t1 = time.perf_counter()
    booster = lgb.train(p, ds, num_boost_round=trees)
    fit_s = time.perf_counter() - t1
    name = f"lightgbm-{version}"
    manifest = {
        "name": "feed-ranker", "version": version, "features": list(FEATURE_NAMES),
        "objective": "lambdarank", "trees": trees, "params": p,
        "training": {**asdict(cfg), "generator": "models.data (see docs/models.md)",
                     "train_sessions": len(tr.sessions), "train_rows": tr.rows,
                     "test_sessions": len(te.sessions), "test_rows": te.rows,
                     "positive_rate": round(float(y.mean()), 4), "fit_s": round(fit_s, 3),
                     "total_s": round(time.perf_counter() - t0, 3)},
        "metrics": {"ndcg@10_test": ndcg_table(te.sessions, booster, name, 10)},
        "lightgbm_version": lgb.__version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return booster, manifest


def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    d = SynthConfig()
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=d.users)
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--sessions-per-reader", type=int, default=d.sessions_per_reader)
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--leaves", type=int, default=15)
    ap.add_argument("--version", default=VERSION)
    ap.add_argument("--out", type=Path, default=ARTIFACT_DIR)
    a = ap.parse_args(argv)
    cfg = SynthConfig(users=a.users, seed=a.seed, sessions_per_reader=a.sessions_per_reader)
    booster, manifest = train(cfg, a.trees, a.leaves, a.version)
    out = write_artifact(a.out, booster, manifest)
    print(json.dumps({"artifact": str(out), "training": manifest["training"], "metrics": manifest["metrics"]},
                     indent=2))


if __name__ == "__main__":
    main()
