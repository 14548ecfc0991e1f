"""Progress marks: the highest source offset each topology has applied, per (topic, partition).

The one source of truth for read-your-writes (issue 23). Redis key layout:

- ``progress:{topology}``  HASH ``"topic:partition"`` -> the highest offset whose side effects the
  topology applied (every record at or below it on that partition is applied, or was refused).
  Written *after* a batch's side effects, by a script that only ever raises a field (a batch
  re-read after a restart never moves a mark back).
- pub/sub channel ``progress:{topology}``: JSON ``{"topic:partition": offset, ...}`` of the fields
  the same script raised, so API waiters wake on progress instead of polling.
- ``rywu:{user}``  HASH ``"topic:partition"`` -> the offset of that user's newest accepted write
  there (the API's per-user consistency token; raised the same way, with a TTL).

After a Redis loss the marks are absent, never wrong: readers then fall back to the topology's
consumer-group offsets committed in Kafka, which are never ahead of applied side effects
(``topologies/faust_runtime.py`` commits only after them), until the topology's next batch on the
partition writes its mark again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis as _redis
import redis.asyncio as aioredis

from core.settings import Settings

PREFIX = "progress:"
USER_PREFIX = "rywu:"
Position = tuple[str, int, int]  # topic, partition, offset
Marks = dict[tuple[str, int], int]

# KEYS[1] hash; ARGV[1] channel ('' = no publish), ARGV[2] ttl ms (0 = none), then field, offset pairs
RAISE_LUA = """
local raised = {}
local any = false
for i = 3, #ARGV, 2 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if not cur or tonumber(cur) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    raised[ARGV[i]] = tonumber(ARGV[i + 1])
    any = true
  end
end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if any and ARGV[1] ~= '' then redis.call('PUBLISH', ARGV[1], cjson.encode(raised)) end
return any and 1 or 0
"""


def key(topology: str) -> str:
    """Redis hash (and pub/sub channel) of ``topology``'s progress marks."""
    return f"{PREFIX}{topology}"


def user_key(user: str) -> str:
    """Redis hash of ``user``'s newest accepted write per (topic, partition)."""
    return f"{USER_PREFIX}{user}"


def group_id(settings: Settings, topology: str) -> str:
    """The consumer group of ``topology``: ``feedstream-<name><suffix>`` (its Faust app id)."""
    return f"feedstream-{topology}{settings.topology_group_suffix}"


def field(topic: str, partition: int) -> str:
    """The hash field of one partition."""
    return f"{topic}:{partition}"


def parse(raw: Mapping[Any, Any]) -> Marks:
    """``{"topic:partition": offset}`` (bytes or str) as ``{(topic, partition): offset}``."""
    out: Marks = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else str(k)
        topic, _, part = name.rpartition(":")
        out[(topic, int(part))] = int(v)
    return out


def highest(positions: Iterable[tuple[str, int, int]]) -> Marks:
    """The highest offset per (topic, partition) of ``positions``."""
    out: Marks = {}
    for topic, part, off in positions:
        if off > out.get((topic, part), -1):
            out[(topic, part)] = off
    return out


def _args(channel: str, ttl_ms: int, marks: Mapping[tuple[str, int], int]) -> list[Any]:
    return [channel, ttl_ms, *(x for (t, p), off in sorted(marks.items()) for x in (field(t, p), off))]


def queue_mark(r: Any, topology: str, marks: Mapping[tuple[str, int], int], client: Any = None) -> Any:
    """Raise ``topology``'s marks (and publish the raised ones) through ``client`` (a pipeline: queued)."""
    if not marks:
        return None
    return r.register_script(RAISE_LUA)(keys=[key(topology)], args=_args(key(topology), 0, marks),
                                        client=client if client is not None else r)


def mark(r: _redis.Redis, topology: str, marks: Mapping[tuple[str, int], int]) -> None:
    """Record, after their side effects, that ``topology`` applied ``marks`` (one call; monotonic)."""
    queue_mark(r, topology, marks)


async def amark(r: aioredis.Redis, topology: str, marks: Mapping[tuple[str, int], int]) -> None:
    """:func:`mark` on an asyncio client."""
    if marks:
        await r.register_script(RAISE_LUA)(keys=[key(topology)], args=_args(key(topology), 0, marks))


def marks_of(r: _redis.Redis, topology: str) -> Marks:
    """``topology``'s current marks (empty after a Redis loss)."""
    return parse(r.hgetall(key(topology)))


async def record_user(r: aioredis.Redis, user: str, positions: Iterable[Position], ttl_s: int) -> None:
    """Raise ``user``'s newest-write positions to ``positions`` (kept ``ttl_s`` after the last write)."""
    marks = highest(positions)
    if marks:
        await r.register_script(RAISE_LUA)(keys=[user_key(user)], args=_args("", ttl_s * 1000, marks))
