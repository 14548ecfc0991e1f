"""Offensive-text score from ``alt-profanity-check``: a linear SVM on TF-IDF trained on ~200k labelled
comments, shipped inside the package (nothing is downloaded at run time).

The operating point (LIMIT at ``threshold``, the review band from ``review_from``) is a measured
decision kept in ``models/artifacts/offensive/manifest.json`` (how it was chosen: docs/models.md,
``feedstream model evaluate offensive --corpus ...``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path

OFFENSIVE_DIR = Path(__file__).resolve().parent.parent / "artifacts" / "offensive"
log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def offensive_version() -> str:
    """The classifier's name and package version, e.g. ``profanity-check-1.8.0``."""
    return f"profanity-check-{version('alt-profanity-check')}"


def offensive_scores(texts: Sequence[str]) -> list[float]:
    """Probability that each text is offensive, in [0, 1] (one vectorized call for a batch)."""
    if not texts:
        return []
    from profanity_check import predict_prob  # loads the packaged model once, on first use

    return [float(p) for p in predict_prob(list(texts))]


@dataclass(frozen=True)
class OperatingPoint:
    """LIMIT at ``threshold``; ``[review_from, threshold)`` is the review band."""

    threshold: float
    review_from: float
    model: str


def operating_point(directory: Path | None = None) -> OperatingPoint:
    """The operating point in the manifest (default: the committed one).

    A manifest measured on another package version still loads (the scores are comparable only if
    the packaged model did not change), with a warning to re-run the evaluation.
    """
    path = (directory or OFFENSIVE_DIR) / "manifest.json"
    try:
        m = json.loads(path.read_text())
        point = OperatingPoint(float(m["threshold"]), float(m["review_from"]), str(m["model"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the offensive model's operating point {path}: {exc}; "
                         "restore it from git") from exc
    if not 0 < point.review_from <= point.threshold <= 1:
        raise ValueError(f"{path}: need 0 < review_from <= threshold <= 1, got {point}")
    if point.model != offensive_version():
        log.warning("offensive operating point %s was measured on %s, running %s: re-run "
                    "`feedstream model evaluate offensive --corpus ...` (docs/models.md)",
                    path, point.model, offensive_version())
    return point
