"""The spam model's artifact: ``models/artifacts/spam/{model.txt,manifest.json}`` (LightGBM binary
classifier), with the operating threshold and the review band written into the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from models.moderation.features import SPAM_FEATURES, matrix
from models.ranker import MANIFEST_FILE, MODEL_FILE, ArtifactError, read_manifest

SPAM_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "spam"


@dataclass(frozen=True)
class SpamModel:
    """A loaded spam booster with its operating threshold and review band."""

    booster: lgb.Booster
    manifest: Mapping[str, Any]

    @property
    def threshold(self) -> float:
        """Scores at or above it are spam."""
        return float(self.manifest["threshold"])

    @property
    def review_from(self) -> float:
        """Scores in ``[review_from, threshold)`` are uncertain: they go to the review queue."""
        return float(self.manifest["review_from"])

    @property
    def version(self) -> str:
        """``spam-lgbm-<version>``."""
        return f"spam-lgbm-{self.manifest['version']}"

    def scores(self, rows: list[list[float]]) -> np.ndarray:
        """Spam probability of each feature row."""
        if not rows:
            return np.zeros(0)
        return np.asarray(self.booster.predict(matrix(rows), num_threads=1))


def load_spam(directory: Path | None = None) -> SpamModel:
    """Load the artifact (default: the committed one); refuse one whose features are not ours."""
    directory = directory or SPAM_DIR
    manifest = read_manifest(directory)
    if list(manifest.get("features") or []) != list(SPAM_FEATURES):
        raise ArtifactError(f"spam artifact features {manifest.get('features')} != {list(SPAM_FEATURES)}; "
                            "retrain with `feedstream model train spam`")
    try:
        booster = lgb.Booster(model_str=(directory / MODEL_FILE).read_text())
    except (OSError, lgb.basic.LightGBMError) as exc:
        raise ArtifactError(f"cannot load {directory / MODEL_FILE}: {exc}") from exc
    return SpamModel(booster, manifest)


__all__ = ["MANIFEST_FILE", "SPAM_DIR", "SpamModel", "load_spam"]
