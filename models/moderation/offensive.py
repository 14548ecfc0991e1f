"""Offensive-text score from ``alt-profanity-check``: a linear SVM on TF-IDF trained on ~200k labelled
comments, shipped inside the package (nothing is downloaded at run time)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import version


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
