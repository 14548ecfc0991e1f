"""Rules, then models, then one decision: the moderation verdict of one piece of content.

:func:`decide` is pure: rule hits remove; spam at or above the spam threshold removes; offensive text
at or above its threshold limits; scores inside a review band (and no stronger decision) allow but
flag the item for the review queue.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from models.moderation.features import Behaviour, Content, spam_row
from models.moderation.offensive import offensive_scores, offensive_version, operating_point
from models.moderation.rules import RULES_VERSION, rule_reasons
from models.moderation.spam import SpamModel, load_spam

RANK = {"ALLOW": 0, "LIMIT": 1, "REMOVE": 2}


@dataclass(frozen=True)
class Thresholds:
    """Operating points: ``[review, act)`` is the review band of each score."""

    spam: float
    spam_review: float
    offensive: float = 0.85
    offensive_review: float = 0.5


@dataclass(frozen=True)
class ModelVerdict:
    """What rules and models say about one piece of content."""

    decision: str
    scores: dict[str, float]
    reasons: list[str] = field(default_factory=list)
    needs_review: bool = False
    model_version: str = ""


def decide(rule_hits: Sequence[str], scores: Mapping[str, float], th: Thresholds) -> tuple[str, list[str], bool]:
    """``(decision, reasons, needs_review)`` from rule hits and classifier scores."""
    if rule_hits:
        return "REMOVE", list(rule_hits), False
    decision, reasons = "ALLOW", []
    if scores.get("spam", 0.0) >= th.spam:
        decision, reasons = "REMOVE", ["spam"]
    if scores.get("offensive", 0.0) >= th.offensive:
        decision = decision if RANK[decision] >= RANK["LIMIT"] else "LIMIT"
        reasons.append("offensive")
    unsure = (th.spam_review <= scores.get("spam", 0.0) < th.spam
              or th.offensive_review <= scores.get("offensive", 0.0) < th.offensive)
    return decision, reasons, decision == "ALLOW" and unsure


class Classifier:
    """The rules (a domain blocklist), the offensive-text model and the spam model, loaded once."""

    def __init__(self, blocklist: Iterable[str] = (), spam: SpamModel | None = None,
                 offensive_threshold: float | None = None, offensive_review: float | None = None) -> None:
        self.blocklist = tuple(blocklist)
        self.spam = spam or load_spam()
        point = operating_point()  # the measured decision in models/artifacts/offensive/manifest.json
        self.th = Thresholds(self.spam.threshold, self.spam.review_from,
                             point.threshold if offensive_threshold is None else offensive_threshold,
                             point.review_from if offensive_review is None else offensive_review)
        self.version = f"{RULES_VERSION}+{offensive_version()}+{self.spam.version}"

    def classify(self, items: Sequence[tuple[Content, Behaviour]]) -> list[ModelVerdict]:
        """Verdicts for a batch (one offensive call and one spam predict per batch)."""
        offensive = offensive_scores([c.text for c, _ in items])
        spam = self.spam.scores([spam_row(c, b) for c, b in items])
        out = []
        for (c, _), off, sp in zip(items, offensive, spam):
            scores = {"offensive": round(off, 4), "spam": round(float(sp), 4)}
            decision, reasons, review = decide(rule_reasons(c, self.blocklist), scores, self.th)
            out.append(ModelVerdict(decision, scores, reasons, review, self.version))
        return out
