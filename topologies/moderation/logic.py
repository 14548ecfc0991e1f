"""Pure per-event logic of the moderation topology: what to score, and the verdict record to emit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from core.clock import millis
from core.events import envelope
from models.moderation.classify import ModelVerdict
from models.moderation.features import Behaviour

CONTENT_RECORDS = ("PostCreated", "PostEdited", "CommentAdded")
POST_RECORDS = ("PostCreated", "PostEdited", "PostDeleted")
MODERATION_RECORDS = ("ModeratorDecided", "ContentReported", "DecisionAppealed")
ACTOR = "moderation"
HOUR_MS = 3_600_000  # the posting-rate window (as stores.moderation.behaviour)


@dataclass(frozen=True)
class Item:
    """One piece of content to score: a post version or a comment."""

    key: str
    kind: str
    content_id: int
    post_id: int
    author_id: str
    text: str
    links: tuple[str, ...]
    at: int
    event_id: str

    @property
    def ctx(self) -> dict[str, Any]:
        """What the review queue shows next to the scores."""
        return {"content_key": self.key, "kind": self.kind, "content_id": self.content_id,
                "post_id": self.post_id, "author_id": self.author_id, "text": self.text[:500]}


def content_key(kind: str, content_id: int) -> str:
    """``post:<id>`` or ``comment:<id>``."""
    return f"{kind.lower()}:{content_id}"


def item_of(name: str, v: Mapping[str, Any]) -> Item | None:
    """The content a record carries, or None (deletes, likes, ...)."""
    if name in ("PostCreated", "PostEdited"):
        return Item(content_key("POST", v["post_id"]), "POST", v["post_id"], v["post_id"], v["author_id"],
                    v.get("text") or "", tuple(v.get("links") or ()), millis(v["occurred_at"]), v["event_id"])
    if name == "CommentAdded":
        return Item(content_key("COMMENT", v["comment_id"]), "COMMENT", v["comment_id"], v["post_id"],
                    v["user_id"], v.get("text") or "", (), millis(v["occurred_at"]), v["event_id"])
    return None


def model_part(mv: ModelVerdict, item: Item) -> dict[str, Any]:
    """The model half of a content's state."""
    return {"decision": mv.decision, "scores": mv.scores, "reasons": mv.reasons, "model_version": mv.model_version,
            "needs_review": mv.needs_review, "content_version": item.at, "event_id": item.event_id}


def decision_part(v: Mapping[str, Any]) -> dict[str, Any]:
    """The moderator half of a content's state, from a ModeratorDecided event (the audit fields)."""
    return {"decision": v["decision"], "by": v["actor_id"], "reason": v["reason"],
            "at": millis(v["occurred_at"]), "event_id": v["event_id"]}


def ctx_of_event(v: Mapping[str, Any]) -> dict[str, Any]:
    """The content fields every moderation.v1 event carries."""
    return {k: v[k] for k in ("content_key", "kind", "content_id", "post_id", "author_id")}


def verdict_value(ctx: Mapping[str, Any], m: Mapping[str, Any] | None, d: Mapping[str, Any] | None,
                  at_ms: int | None = None) -> dict[str, Any]:
    """The ModerationVerdict record of the merged state: the moderator's decision if any, else the model's."""
    m = m or {}
    return {
        **envelope(ACTOR, at_ms), "content_key": ctx["content_key"], "kind": ctx["kind"],
        "content_id": ctx["content_id"], "post_id": ctx["post_id"], "author_id": ctx["author_id"],
        "decision": d["decision"] if d else m.get("decision", "ALLOW"), "source": "MODERATOR" if d else "MODEL",
        "scores": dict(m.get("scores") or {}),
        "reasons": ["moderator"] if d else list(m.get("reasons") or []),
        "model_version": m.get("model_version", "none"), "needs_review": bool(m.get("needs_review")) and not d,
        "content_version": int(m.get("content_version", 0)), "decided_by": d["by"] if d else None,
        "decision_reason": d["reason"] if d else None,
        "source_event_id": (d or m).get("event_id", ""),
    }


def model_part_of_verdict(v: Mapping[str, Any]) -> dict[str, Any]:
    """The model half of a content's state, back from a MODEL-sourced ModerationVerdict record (a rebuild)."""
    return {"decision": v["decision"], "scores": dict(v.get("scores") or {}), "reasons": list(v.get("reasons") or []),
            "model_version": v.get("model_version", "none"), "needs_review": bool(v.get("needs_review")),
            "content_version": int(v.get("content_version") or 0), "event_id": v.get("source_event_id", "")}


def fold_behaviour(items: Sequence[Item], bands: Sequence[Sequence[str]], recent: Mapping[str, Mapping[str, int]],
                   members: Mapping[str, AbstractSet[str]], window_ms: int = HOUR_MS) -> list[tuple[int, int]]:
    """``(posts in the last hour, other authors sharing a band)`` of each item of a batch, as scoring them
    one by one in order would give them: from the state before the batch (``recent``: author -> content
    id -> time; ``members``: LSH band -> authors), each item recorded before the next is scored."""
    recent_ = {a: dict(v) for a, v in recent.items()}
    members_ = {b: set(v) for b, v in members.items()}
    out = []
    for item, item_bands in zip(items, bands):
        dup = set().union(*(members_.get(b, set()) for b in item_bands)) - {item.author_id}
        mine = recent_.setdefault(item.author_id, {})
        mine[str(item.content_id)] = item.at
        out.append((sum(1 for t in mine.values() if item.at - window_ms < t <= item.at), len(dup)))
        for b in item_bands:
            members_.setdefault(b, set()).add(item.author_id)
    return out


def behaviour(item: Item, user: Mapping[str, Any] | None, counts: Mapping[str, int], rate: int, dup: int) -> Behaviour:
    """The author's facts at posting time: account age (None if unknown), follower counts, rate, near-duplicates."""
    created = (user or {}).get("created_at")
    age_h = max(0.0, (item.at - created) / 3_600_000) if created else None
    return Behaviour(age_h, counts["followers"], counts["following"], rate, dup)


def windows(items: Sequence[Item]) -> dict[str, tuple[int, int]]:
    """Per author, the first and last time of the batch's items (the recent posts to read)."""
    out: dict[str, tuple[int, int]] = {}
    for i in items:
        lo, hi = out.get(i.author_id, (i.at, i.at))
        out[i.author_id] = (min(lo, i.at), max(hi, i.at))
    return out
