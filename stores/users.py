"""User profiles: Cassandra ``users`` (durable) and a Redis hash per user (hot display-info cache).

Redis: ``user:{id}`` HASH handle/display_name/bio/avatar_url/created_at (1 day TTL, deleted on
every profile change, so it is rebuilt from Cassandra on the next read).

``registered:{id}`` STRING "1": written by the write API (not a view) once Kafka confirmed a
``UserRegistered``, with a TTL (``api_registered_ttl_s``) that outlasts the users topology's lag.
It is the read-your-writes half of "is this user registered?": the profile view (above) is the other
half, asked when the mark is absent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis as _redis
from cassandra.cluster import Session

from core.rows import ProfileWrite
from stores import redis as redis_store
from stores.cassandra import prepared

DDL: list[str] = [
    ("CREATE TABLE IF NOT EXISTS {ks}.users (user_id text PRIMARY KEY, handle text, display_name text, "
     "bio text, avatar_url text, created_at bigint)"),
]
FIELDS = ("handle", "display_name", "bio", "avatar_url", "created_at")
CACHE_TTL_S = 86_400


def k_user(user_id: str) -> str:
    """Redis key of a user's cached profile."""
    return redis_store.tagged("user:", user_id)


def k_registered(user_id: str) -> str:
    """Redis key marking that the API accepted ``user_id``'s registration (until the profile view has it)."""
    return redis_store.tagged("registered:", user_id)


def apply_profile(session: Session, r: _redis.Redis | None, w: ProfileWrite) -> None:
    """Write a profile change (event time as write timestamp: replays and reorders converge)."""
    cols: dict[str, Any] = dict(w.fields)
    if w.registered:
        cols["created_at"] = w.at_ms
    if cols:
        names = ", ".join(f"{k}=%s" for k in cols)
        session.execute(f"UPDATE users USING TIMESTAMP %s SET {names} WHERE user_id=%s",
                        (w.at_ms * 1000, *cols.values(), w.user_id))
    if r is not None:
        r.delete(k_user(w.user_id))


def _decode(raw: dict[bytes, bytes]) -> dict[str, Any]:
    d: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    if "created_at" in d:
        d["created_at"] = int(d["created_at"]) if d["created_at"] else None
    return {k: (v if v != "" else None) for k, v in d.items()}


def cached_users(r: _redis.Redis, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Profiles present in the Redis cache (one pipelined round trip)."""
    p = r.pipeline(transaction=False)
    for u in ids:
        p.hgetall(k_user(u))
    return {u: {"user_id": u, **_decode(raw)} for u, raw in zip(ids, p.execute()) if raw}


def stored_users(session: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Profiles from Cassandra (one IN query)."""
    if not ids:
        return {}
    rows = session.execute(prepared(session, "SELECT user_id, handle, display_name, bio, avatar_url, "
                                              "created_at FROM users WHERE user_id IN ?"), (ids,))
    return {row.user_id: row._asdict() for row in rows if row.handle is not None}


def cache_users(r: _redis.Redis, users: Iterable[dict[str, Any]]) -> None:
    """Write profiles into the Redis cache."""
    p = r.pipeline(transaction=False)
    for u in users:
        p.hset(k_user(u["user_id"]), mapping={k: "" if u.get(k) is None else str(u[k]) for k in FIELDS})
        p.expire(k_user(u["user_id"]), CACHE_TTL_S)
    p.execute()


def get_users(session: Session | None, r: _redis.Redis | None, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Profiles of ``ids`` (cache, then Cassandra for misses, cached back); unknown ids are absent."""
    ids = list(dict.fromkeys(ids))
    out = cached_users(r, ids) if r is not None and ids else {}
    missing = [u for u in ids if u not in out]
    if missing and session is not None:
        found = stored_users(session, missing)
        out.update(found)
        if r is not None and found:
            cache_users(r, found.values())
    return out


def display(user: dict[str, Any] | None, user_id: str) -> dict[str, Any]:
    """The author block embedded in posts and comments."""
    user = user or {}
    return {"user_id": user_id, "handle": user.get("handle"), "display_name": user.get("display_name"),
            "avatar_url": user.get("avatar_url")}
