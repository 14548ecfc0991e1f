"""Pure per-event logic of the search topology: the versioned document each event writes.

- ``PostCreated``/``PostEdited`` write the whole post document (an edit keeps the stored
  ``created_at`` and popularity); ``PostDeleted`` writes a tombstone (text and tags dropped).
- ``UserRegistered`` writes a profile; ``ProfileUpdated`` merges its non-null fields over it.
- ``EngagementCount`` running totals (window fields null) set a post's popularity bucket.
- ``Liked``/``CommentAdded`` add the post to the user's interest document, ``Unliked`` removes
  it (other engagements are ignored); the interest feed finds posts like those.
- Moderation verdicts (issue 17) will set ``hidden`` on the post document: :func:`verdict_write`
  is the hook; readers already exclude ``hidden`` posts (:func:`stores.search.post_filter`).

Every write carries the external version :func:`stores.search.version_of` of its event time, so a
redelivered or replayed older event is rejected by OpenSearch instead of resurrecting old content.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.clock import millis
from core.feed import VISIBILITIES
from stores.search import Write, post_doc_id, user_doc_id, version_of
from streams.errors import PoisonRecord
from topologies.fanout.logic import UnknownPost

POST_RECORDS = ("PostCreated", "PostEdited", "PostDeleted")
USER_RECORDS = ("UserRegistered", "ProfileUpdated")
COUNT_RECORDS = ("EngagementCount",)
INTEREST_RECORDS = ("Liked", "Unliked", "CommentAdded")  # engagements.v1: the interest profile
PROFILE_FIELDS = ("display_name", "bio")


class NotPostAuthor(PoisonRecord):
    """A PostEdited or PostDeleted naming another author than the indexed post's."""


def check_record(name: str, v: Mapping[str, Any]) -> None:
    """Raise PoisonRecord for an event this topology cannot index (before any write)."""
    if name in ("PostCreated", "PostEdited"):
        if v.get("visibility") not in VISIBILITIES:
            raise PoisonRecord(f"{name} of post {v.get('post_id')}: unknown visibility {v.get('visibility')!r}")
        if not v.get("author_id") or v.get("post_id") is None:
            raise PoisonRecord(f"{name} without post_id or author_id")
    elif name == "PostDeleted":
        if not v.get("author_id") or v.get("post_id") is None:
            raise PoisonRecord("PostDeleted without post_id or author_id")
    elif name == "UserRegistered":
        if not v.get("user_id") or not v.get("handle"):
            raise PoisonRecord("UserRegistered without user_id or handle")
    elif name == "ProfileUpdated":
        if not v.get("user_id"):
            raise PoisonRecord("ProfileUpdated without user_id")
    elif name in INTEREST_RECORDS:
        if not v.get("user_id") or v.get("post_id") is None:
            raise PoisonRecord(f"{name} without user_id or post_id")
    elif name not in COUNT_RECORDS:
        raise PoisonRecord(f"unexpected record {name}")


def normalise_tags(tags: Sequence[str] | None) -> list[str]:
    """Hashtags as the index stores them: without ``#``, lowercase, deduplicated, in order."""
    return list(dict.fromkeys(t.lstrip("#").lower() for t in tags or () if t.lstrip("#")))


def post_write(name: str, v: Mapping[str, Any], current: Mapping[str, Any] | None) -> Write:
    """The document write of a posts.v1 event over the ``current`` indexed document (or None)."""
    at = millis(v["occurred_at"])
    if name == "PostEdited" and (current is None or current.get("deleted")):
        # the fan-out rule (issue 14 item 6): an edit never creates a post, so a PostEdited
        # produced straight to Kafka for an unknown (or deleted) post is not made searchable
        raise UnknownPost(f"PostEdited of post {v['post_id']}, which was never created or is deleted")
    if current is not None and current.get("author_id") not in (None, v["author_id"]):
        raise NotPostAuthor(f"{name} of post {v['post_id']} by {v['author_id']}, "
                            f"but the post is {current.get('author_id')}'s")
    cur = current or {}
    doc: dict[str, Any] = {"kind": "post", "post_id": int(v["post_id"]), "author_id": v["author_id"],
                           "created_at": cur.get("created_at", at), "updated_at": at,
                           "popularity": cur.get("popularity", 0), "hidden": cur.get("hidden", False)}
    if name == "PostDeleted":
        doc.update(deleted=True, visibility=cur.get("visibility", "PUBLIC"))
    else:
        if name == "PostCreated":
            doc["created_at"] = at
        doc.update(deleted=False, text=v.get("text") or "", hashtags=normalise_tags(v.get("hashtags")),
                   visibility=v["visibility"])
    return Write(post_doc_id(v["post_id"]), version_of(at), doc)


def user_write(name: str, v: Mapping[str, Any], current: Mapping[str, Any] | None) -> Write:
    """The profile document a users.v1 event leaves (registration sets all, an update merges)."""
    at = millis(v["occurred_at"])
    doc: dict[str, Any] = {"kind": "user", "user_id": v["user_id"], "deleted": False}
    if name == "UserRegistered":
        doc.update(handle=v["handle"], display_name=v.get("display_name") or "", bio=v.get("bio") or "")
    else:
        doc.update({k: (current or {}).get(k) for k in ("handle", "display_name", "bio")
                    if (current or {}).get(k) is not None})
        doc.update({k: v[k] for k in PROFILE_FIELDS if v.get(k) is not None})
    doc["updated_at"] = at
    return Write(user_doc_id(v["user_id"]), version_of(at), doc)


def popularity(likes: int, comments: int, shares: int, reactions: Mapping[str, int] | None) -> int:
    """A post's popularity bucket: 4·log2(1 + weighted engagement), so it changes O(log n) times."""
    score = likes + 2 * comments + 3 * shares + sum((reactions or {}).values())
    return round(4 * math.log2(1 + max(score, 0)))


def verdict_write(v: Mapping[str, Any]) -> tuple[int, bool]:  # pragma: no cover - wired with issue 17
    """(post_id, hidden) of a moderation verdict: the hook the verdicts topic will call."""
    return int(v["post_id"]), str(v.get("verdict", "")).upper() in ("REMOVE", "HIDE", "BLOCK")


@dataclass
class Plan:
    """A batch's writes (one per document, the newest), popularity buckets and refused events."""

    writes: list[Write]
    popularity: dict[int, int]
    refused: list[tuple[int, PoisonRecord]]
    interests: list[tuple[str, int, bool]] = field(default_factory=list)


def plan(events: Sequence[tuple[str, Mapping[str, Any]]], current: Mapping[str, Mapping[str, Any]]) -> Plan:
    """The writes of ``events`` (in offset order) over the ``current`` indexed documents.

    Events of one document in a batch fold over each other in order; the document's newest write
    (highest version, the later event on a tie) is the one sent. ``refused`` lists (position,
    reason) of events to dead-letter.
    """
    docs: dict[str, Mapping[str, Any]] = dict(current)
    best: dict[str, Write] = {}
    pop: dict[int, int] = {}
    refused: list[tuple[int, PoisonRecord]] = []
    interests: list[tuple[str, int, bool]] = []
    for i, (name, v) in enumerate(events):
        try:
            if name not in (*POST_RECORDS, *USER_RECORDS, *COUNT_RECORDS, *INTEREST_RECORDS):
                continue  # engagements.v1 carries shares and reactions too: not interests
            check_record(name, v)
            if name in INTEREST_RECORDS:
                interests.append((v["user_id"], int(v["post_id"]), name != "Unliked"))
                continue
            if name in POST_RECORDS:
                w = post_write(name, v, docs.get(post_doc_id(v["post_id"])))
            elif name in USER_RECORDS:
                w = user_write(name, v, docs.get(user_doc_id(v["user_id"])))
            else:
                if v.get("window_start") is None:  # running totals only
                    pid = int(v["post_id"])
                    pop[pid] = max(pop.get(pid, 0), popularity(v["likes"], v["comments"], v["shares"],
                                                               v.get("reactions")))
                continue
        except PoisonRecord as exc:
            refused.append((i, exc))
            continue
        prev = best.get(w.doc_id)
        if prev is None or w.version >= prev.version:
            best[w.doc_id] = w
            docs[w.doc_id] = w.doc
    writes = list(best.values())
    for w in writes:  # a post written in this batch carries the batch's popularity itself
        if w.doc.get("kind") == "post" and w.doc["post_id"] in pop:
            w.doc["popularity"] = pop.pop(w.doc["post_id"])
    return Plan(writes, pop, refused, interests)


def needs_current(events: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Document ids whose indexed source a batch needs (edits, deletes and profile updates)."""
    ids = []
    for name, v in events:
        if name in ("PostEdited", "PostDeleted") and v.get("post_id") is not None:
            ids.append(post_doc_id(v["post_id"]))
        elif name == "ProfileUpdated" and v.get("user_id"):
            ids.append(user_doc_id(v["user_id"]))
    return ids
