"""Trending views: current top-K per scope in Redis, per-window history in Cassandra.

Redis layout (hot, rebuildable from ``trending.v1``):

- ``trending:{scope}`` sorted set ``item -> score`` of the newest window's top-K;
- ``trending:{scope}:items`` hash ``item -> JSON {rank, score, count, velocity, zscore}``;
- ``trending:{scope}:meta`` hash ``window_start, window_end, updated_at`` (epoch ms);
- ``trending:late`` hash ``window label -> events dropped as too late``.

A write for an older window than the one stored is ignored (late updates only reach Cassandra),
and rewriting the same window is idempotent, so replays are harmless.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis
from cassandra.cluster import Session

from stores import redis as redis_store
from stores.cassandra import prepared

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS {ks}.trending_history (
        scope text, day date, window_end timestamp, rank int,
        window_start timestamp, item text, score double, count bigint,
        velocity double, zscore double,
        PRIMARY KEY ((scope, day), window_end, rank)
    ) WITH CLUSTERING ORDER BY (window_end DESC, rank ASC)""",
]

LATE_KEY = "trending:late"

# KEYS: zset, items, meta; ARGV: window_start, window_end, updated_at, then (item, score, json)*
_REPLACE = """
local old = redis.call('HGET', KEYS[3], 'window_end')
if old and tonumber(old) > tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
for i = 4, #ARGV, 3 do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 2])
end
redis.call('HSET', KEYS[3], 'window_start', ARGV[1], 'window_end', ARGV[2], 'updated_at', ARGV[3])
return 1
"""


class Entry(Protocol):
    """What a ranked entry must expose (``topologies.trending.logic.Ranked`` does)."""

    rank: int
    item: str
    score: float
    count: int
    velocity: float | None
    zscore: float | None


def keys(scope: str) -> tuple[str, str, str]:
    """The Redis keys of a scope: sorted set, item details, metadata."""
    return f"trending:{scope}", f"trending:{scope}:items", f"trending:{scope}:meta"


def write_current(r: redis.Redis, scope: str, window_start: int, window_end: int,
                  entries: Sequence[Entry], now_ms: int | None = None) -> bool:
    """Replace the scope's current top-K with this window's unless a newer window is stored."""
    args: list[Any] = [window_start, window_end, now_ms if now_ms is not None else time.time_ns() // 1_000_000]
    for e in entries:
        detail = {"rank": e.rank, "score": e.score, "count": e.count, "velocity": e.velocity, "zscore": e.zscore}
        args += [e.item, repr(float(e.score)), json.dumps(detail, separators=(",", ":"))]
    return bool(r.eval(_REPLACE, 3, *keys(scope), *args))


def incr_late(r: redis.Redis, label: str, n: int = 1) -> int:
    """Count ``n`` events that arrived after their windows' allowed lateness."""
    return int(r.hincrby(LATE_KEY, label, n))


def late_counts(r: redis.Redis) -> dict[str, int]:
    """Too-late events per window label."""
    return {k.decode(): int(v) for k, v in r.hgetall(LATE_KEY).items()}


def _parse(scope: str, meta: dict[bytes, bytes], ids: list[bytes], details: list[bytes | None]) -> dict[str, Any]:
    items = []
    for item, raw in zip(ids, details):
        d = json.loads(raw) if raw else {}
        items.append({"item": item.decode(), **d})
    items.sort(key=lambda d: d.get("rank", 1 << 30))
    return {
        "scope": scope,
        "window_start": int(meta[b"window_start"]) if b"window_start" in meta else None,
        "window_end": int(meta[b"window_end"]) if b"window_end" in meta else None,
        "updated_at": int(meta[b"updated_at"]) if b"updated_at" in meta else None,
        "items": items,
    }


def current_trending(r: redis.Redis, scope: str, limit: int = 10) -> dict[str, Any]:
    """The scope's current window and its top ``limit`` items (``items`` empty if none yet)."""
    zkey, ikey, mkey = keys(scope)
    with redis_store.multi(r) as p:
        p.hgetall(mkey)
        p.zrevrange(zkey, 0, limit - 1)
        meta, ids = p.execute()
    details = r.hmget(ikey, ids) if ids else []
    return _parse(scope, meta, ids, details)


async def current_trending_async(r: aioredis.Redis, scope: str, limit: int = 10) -> dict[str, Any]:
    """:func:`current_trending` for the asyncio client the API uses."""
    zkey, ikey, mkey = keys(scope)
    async with redis_store.multi(r) as p:
        p.hgetall(mkey)
        p.zrevrange(zkey, 0, limit - 1)
        meta, ids = await p.execute()
    details = await r.hmget(ikey, ids) if ids else []
    return _parse(scope, meta, ids, details)


def _day(window_end: int) -> dt.date:
    return dt.datetime.fromtimestamp((window_end - 1) / 1000, dt.UTC).date()


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def write_history_async(s: Session, scope: str, window_start: int, window_end: int,
                        entries: Sequence[Entry]) -> list[Any]:
    """Start :func:`write_history`'s statements concurrently; wait on the returned futures."""
    day, end = _day(window_end), _ts(window_end)
    insert = prepared(s,
        "INSERT INTO trending_history (scope, day, window_end, rank, window_start, item, score, count,"
        " velocity, zscore) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
    futures = [s.execute_async(insert, (scope, day, end, e.rank, _ts(window_start), e.item, float(e.score),
                                        int(e.count), e.velocity, e.zscore)) for e in entries]
    futures.append(s.execute_async(prepared(
        s, "DELETE FROM trending_history WHERE scope = ? AND day = ? AND window_end = ? AND rank > ?"),
        (scope, day, end, len(entries))))
    return futures


def write_history(s: Session, scope: str, window_start: int, window_end: int,
                  entries: Sequence[Entry]) -> None:
    """Upsert a window's ranked list and delete ranks it no longer has (idempotent)."""
    for future in write_history_async(s, scope, window_start, window_end, entries):
        future.result()


def history(s: Session, scope: str, day: dt.date, limit_windows: int = 60) -> list[dict[str, Any]]:
    """A day's windows for a scope, newest first, each with its ranked items."""
    rows = s.execute(prepared(s, 
        "SELECT window_start, window_end, rank, item, score, count, velocity, zscore FROM trending_history"
        " WHERE scope = ? AND day = ?"), (scope, day))
    out: list[dict[str, Any]] = []
    for row in rows:
        end = int(row.window_end.replace(tzinfo=dt.UTC).timestamp() * 1000)
        if not out or out[-1]["window_end"] != end:
            if len(out) == limit_windows:
                break
            start = int(row.window_start.replace(tzinfo=dt.UTC).timestamp() * 1000)
            out.append({"scope": scope, "window_start": start, "window_end": end, "items": []})
        out[-1]["items"].append({"rank": row.rank, "item": row.item, "score": row.score, "count": row.count,
                                 "velocity": row.velocity, "zscore": row.zscore})
    return out


def window_history(s: Session, scope: str, window_end: int) -> list[dict[str, Any]]:
    """One window's ranked items from the history (empty if never written)."""
    rows = s.execute(prepared(s, 
        "SELECT rank, item, score, count, velocity, zscore FROM trending_history"
        " WHERE scope = ? AND day = ? AND window_end = ?"), (scope, _day(window_end), _ts(window_end)))
    return [{"rank": r.rank, "item": r.item, "score": r.score, "count": r.count, "velocity": r.velocity,
             "zscore": r.zscore} for r in rows]
