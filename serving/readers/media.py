"""Uploaded media on read: each post's media with its processing outcome and variant URLs.

A post names uploaded media by id (``media_id`` in its ``MediaRef``); what processing made of it is in
Redis (``mediastate:<id>``, written by the media topology). :func:`hydrate` (pure) sets each such
entry's ``state``: ``ready`` with the variants' public URLs, ``processing`` until the outcome is in,
``rejected`` with the reason for the post's author only (anyone else never sees rejected media), and
drops deleted media. Media given by URL only (no ``media_id``) pass unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import redis as _redis

from serving.readers.base import Down, Guard
from stores import media as store
from stores import redis as redis_store

Item = dict[str, Any]


def media_ids(items: list[Item]) -> list[int]:
    """The uploaded media the items name, once each, in order."""
    return list(dict.fromkeys(m["media_id"] for it in items for m in it.get("media") or () if m.get("media_id")))


def _variants(base: str, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"name": v["name"], "url": f"{base}/{v['object_key']}", "content_type": v["content_type"],
             "width": v["width"], "height": v["height"]} for v in variants if not v["name"].endswith("-segment")]


def hydrate(items: list[Item], states: dict[int, dict[str, Any] | None] | None, viewer: str | None,
            public_base: str) -> None:
    """Set the state of every uploaded media of ``items`` in place; ``states`` None: Redis was down."""
    base = public_base.rstrip("/")
    for it in items:
        media = it.get("media")
        if not media or not any(m.get("media_id") for m in media):
            continue
        out = []
        for m in media:
            mid = m.get("media_id")
            if not mid:
                out.append(m)
                continue
            if states is None:
                out.append({**m, "state": "unavailable"})
                continue
            st = states.get(mid)
            if st is None:
                out.append({**m, "state": "processing"})
            elif st["state"] == "ready":
                out.append({**m, "state": "ready", "width": st["width"], "height": st["height"],
                            "duration_ms": st["duration_ms"], "variants": _variants(base, st["variants"])})
            elif st["state"] == "rejected" and viewer is not None and viewer == it.get("author_id"):
                out.append({**m, "state": "rejected", "reason": st["reason"], "message": st["message"]})
            # rejected (for anyone else) and deleted media are left out
        it["media"] = out


def decode(raws: list[Any]) -> list[dict[str, Any] | None]:
    return [json.loads(r) if r else None for r in raws]


class RedisMedia:
    """Media outcomes from Redis, one MGET per page (only for pages that name uploaded media)."""

    def __init__(self, redis: Guard[_redis.Redis], public_base: str) -> None:
        self.redis, self.public_base = redis, public_base

    def states(self, ids: list[int]) -> dict[int, dict[str, Any] | None] | None:
        try:
            with self.redis.open() as r:
                raws = redis_store.mget(r, [store.k_state(i) for i in ids])
        except Down:
            return None
        return dict(zip(ids, decode(raws), strict=True))

    def hydrate(self, items: list[Item], viewer: str | None) -> None:
        ids = media_ids(items)
        if ids:
            hydrate(items, self.states(ids), viewer, self.public_base)
