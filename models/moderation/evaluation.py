"""What the moderation models' evaluations share: metrics at an operating threshold and PR-curve PNGs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve


def metrics(scores: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, Any]:
    """Precision, recall, PR-AUC and the confusion matrix at ``threshold``."""
    pred = (scores >= threshold).astype(int)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(y, pred, labels=[0, 1]).ravel())
    return {"threshold": round(threshold, 4), "precision": round(tp / max(1, tp + fp), 4),
            "recall": round(tp / max(1, tp + fn), 4), "false_positive_rate": round(fp / max(1, fp + tn), 4),
            "pr_auc": round(float(average_precision_score(y, scores)), 4),
            "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}, "rows": len(y), "positives": int(y.sum())}


def pr_plot(scores: np.ndarray, y: np.ndarray, pr_auc: float, points: Sequence[tuple[str, float, float]],
            title: str, png: Path) -> None:
    """The PR curve of ``scores`` against labels ``y`` with labelled ``(label, recall, precision)`` points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = precision_recall_curve(y, scores)
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(recall, precision, label=f"PR-AUC {pr_auc:.3f}")
    for (label, r, p), colour in zip(points, ("red", "black", "tab:orange", "tab:green")):
        ax.scatter([r], [p], color=colour, zorder=3, label=label)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01), title=title)
    ax.title.set_fontsize(9)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    plt.close(fig)
