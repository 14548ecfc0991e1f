"""Moderation in the trending job: a post moderation hides stops counting for its hashtags and in the
posts ranking, and counts again when it is shown again.

Pure functions over the job's contribution rows (no framework imports), called by the keyed
``Moderate`` step of :mod:`topologies.trending.job`: per post, the hashtags it counted for and its
engagement sums per slide bucket (:func:`bucket_ms`); a verdict that flips its visibility emits
correction rows at the original event times (retract or re-add) plus a visibility marker
(:func:`visibility_marker`) the rank step uses to leave the post out meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, NamedTuple

from core.clock import millis
from topologies.trending.logic import (
    HASHTAGS,
    MODERATION,
    POSTS,
    Acc,
    Contribution,
    WindowSpec,
    agg_add,
    agg_create,
    dedup_horizon_ms,
)

#: Separates a post's event id from its correction generation in a correction's event id.
_GENERATION_SEP = "\x1e"
#: Event time of a visibility marker (:func:`visibility_marker`): behind every watermark.
MARKER_TS = 0


def verdict_contribution(record: str, value: Mapping[str, Any]) -> Contribution | None:
    """A ``ModerationVerdict`` on a post as a ``moderation`` row: ``item`` = post id, ``ts`` = the
    verdict's ``occurred_at`` (its order), ``weight`` 1.0 if the effective decision hides the post
    (LIMIT or REMOVE, the moderator's part winning, as merged by ``stores.moderation``), else 0.0.

    None for any other record, and for a verdict on a comment (comments are not ranked here).
    """
    if record != "ModerationVerdict" or value.get("kind") != "POST":
        return None
    hides = str(value["decision"]) != "ALLOW"
    return Contribution(MODERATION, str(value["post_id"]), millis(value["occurred_at"]), 1.0 if hides else 0.0, 0)


def bucket_ms(specs: Iterable[WindowSpec]) -> int:
    """The slide bucket of a post's engagement aggregates: the gcd of every spec's slide.

    Every spec's size is a multiple of its slide (:class:`WindowSpec` refuses others), so every
    event time in one ``[b, b + bucket)`` belongs to exactly the same windows of every spec: a
    correction at ``b`` with the bucket's summed count and weight changes exactly the windows its
    events changed, and is on time, late or too late for them exactly as they would be now.
    """
    return reduce(math.gcd, (s.slide_ms for s in specs))


def bucket_expired(bucket: int, specs: Iterable[WindowSpec], watermark: int) -> bool:
    """Whether every window of the bucket starting at ``bucket`` is past its allowed lateness."""
    return all(s.expired(s.assign(bucket)[0], watermark) for s in specs)


@dataclass
class PostVisibility:
    """What the job keeps per post to undo and redo its contributions when moderation flips it.

    ``tags``: the hashtags the post counted for (its PostCreated passed the author check);
    ``ts``/``event_id``: the post's event time and id (``None`` until the post is seen: a verdict
    can be read before its post); ``post``: the post id (set by its first engagement);
    ``buckets``: per slide bucket start (:func:`bucket_ms`), the summed ``(count, weight)`` of the
    post's engagements in it, those recorded while it was hidden included; ``hidden``: whether the
    latest verdict hides it; ``version``: that verdict's ``occurred_at`` (older verdicts are
    ignored); ``generation``: how many times the post's visibility flipped with something to
    correct (each flip's corrections get their own event ids, so a retraction and a later re-add
    are told apart).
    """

    tags: list[str] = field(default_factory=list)
    ts: int | None = None
    event_id: str = ""
    hidden: bool = False
    version: int = -(1 << 62)
    generation: int = 0
    post: str = ""
    buckets: dict[int, Acc] = field(default_factory=dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickle, also a state pickled before the engagement fields existed (an older checkpoint)."""
        self.__dict__.update({"post": "", "buckets": {}, **state})


class Correction(NamedTuple):
    """A contribution the moderation step adds, with its own event id."""

    contribution: Contribution
    event_id: str


def correction_event_id(post_event_id: str, generation: int, bucket: int | None = None) -> str:
    """Event id of the corrections of one visibility flip: the post's (event) id and the flip's
    generation, plus the slide bucket for an engagement bucket's correction (one per bucket)."""
    eid = f"{post_event_id}{_GENERATION_SEP}mod{generation}"
    return eid if bucket is None else f"{eid}@{bucket}"


def _corrections(state: PostVisibility, tags: Iterable[str], sign: int) -> list[Correction]:
    assert state.ts is not None
    eid = correction_event_id(state.event_id, state.generation)
    return [Correction(Contribution(HASHTAGS, t, state.ts, float(sign), sign), eid) for t in tags]


def _bucket_corrections(state: PostVisibility, sign: int) -> list[Correction]:
    return [Correction(Contribution(POSTS, state.post, b, sign * w, sign * n),
                       correction_event_id(f"post:{state.post}", state.generation, b))
            for b, (n, w) in sorted(state.buckets.items()) if n or w]


def on_post_hashtag(state: PostVisibility, tag: str, ts: int, event_id: str) -> list[Correction]:
    """A counted hashtag contribution of a post: remember it; retract it at once if the post is hidden.

    Idempotent: a tag already known (a re-delivered PostCreated) changes nothing.
    """
    if state.ts is None:
        state.ts, state.event_id = ts, event_id
    if tag in state.tags:
        return []
    state.tags.append(tag)
    return _corrections(state, [tag], -1) if state.hidden else []


def on_engagement(state: PostVisibility, post: str, ts: int, count: int, weight: float, bucket: int) -> bool:
    """A counted engagement contribution (kind ``posts``, deduplicated) of a post: add it to its
    slide bucket's aggregate; return whether it counts now (False while the post is hidden: it is
    recorded, and an overturn adds it with the rest)."""
    state.post = post
    b = ts - ts % bucket
    state.buckets[b] = agg_add(state.buckets.get(b, agg_create()), count, weight)
    return not state.hidden


def on_verdict(state: PostVisibility, hides: bool, version: int) -> list[Correction]:
    """A verdict on the post: on a flip of visibility, retract (hidden) or re-add (shown again) every
    known hashtag at the post's own event time, and every engagement bucket's sum at the bucket's
    start, so the windows they counted in are corrected through the job's on-time or late-update path.

    Idempotent and order-safe: a verdict older than the last one applied (``version``) or one that
    does not change visibility (a re-delivery, a new model score with the same outcome) adds nothing.
    """
    if version < state.version:
        return []
    state.version = version
    if hides == state.hidden:
        return []
    state.hidden = hides
    tags = state.tags if state.ts is not None else []  # the post not seen yet: on_post_hashtag retracts
    if not tags and not state.buckets:
        return []
    state.generation += 1
    sign = -1 if hides else 1
    posts = _bucket_corrections(state, sign)
    marker = [Correction(visibility_marker(state.post, hides), posts[0].event_id)] if posts else []
    return marker + (_corrections(state, tags, sign) if tags else []) + posts


def visibility_marker(post: str, hides: bool) -> Contribution:
    """A ``moderation`` row the moderation step emits ahead of a post's engagement corrections:
    the rank step leaves the post out of posts lists while it is hidden (:func:`mark_visibility`).

    Its ``ts`` is 0, behind any watermark: it never counts in a window and always takes the late
    path, the one the corrections for fired windows take after it, in order.
    """
    return Contribution(MODERATION, post, MARKER_TS, 1.0 if hides else 0.0, 0)


def prune_buckets(state: PostVisibility, specs: Iterable[WindowSpec], watermark: int) -> None:
    """Drop engagement buckets whose windows are all past allowed lateness (a correction would be too late)."""
    specs = list(specs)
    for b in [b for b in state.buckets if bucket_expired(b, specs, watermark)]:
        del state.buckets[b]


def moderate(rows: Iterable[Contribution], specs: Sequence[WindowSpec]) -> list[Contribution]:
    """Reference model of the job's ``Moderate`` step for the posts ranking, over deduplicated rows
    in arrival order: ``moderation`` rows (:func:`verdict_contribution`) are consumed, ``posts``
    rows pass (or are held back while their post is hidden); a flip adds a visibility marker and
    the corrections, ready for :func:`simulate`. Hashtag rows pass unchanged here.
    """
    states: dict[str, PostVisibility] = {}
    size = bucket_ms(specs)
    out: list[Contribution] = []
    for c in rows:
        if c.kind == MODERATION:
            out.extend(x.contribution for x in on_verdict(states.setdefault(c.item, PostVisibility()),
                                                          c.weight > 0, c.ts))
        elif c.kind != POSTS or on_engagement(states.setdefault(c.item, PostVisibility()), c.item, c.ts,
                                              c.count, c.weight, size):
            out.append(c)
    return out


def visibility_horizon_ms(specs: Iterable[WindowSpec]) -> int:
    """How long after a post's event time its state must be kept: until every window of it is past
    its allowed lateness (a correction then is too late for all of them: it would change nothing)."""
    return dedup_horizon_ms(specs)


def is_correction(event_id: str) -> bool:
    """Whether a row's event id is a moderation correction's (:func:`correction_event_id`), not an event's."""
    return _GENERATION_SEP in event_id
