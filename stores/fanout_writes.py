"""Batched writes of the fan-out and graph workers: one Cassandra round and one Redis pipeline per batch.

Same key layout and tables as :mod:`stores.timelines`; these functions only change how many round
trips a batch of events costs (see ``docs/fanout.md`` for the measurements).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from typing import Any

import redis as _redis
from cassandra import ConsistencyLevel
from cassandra.cluster import Session

from core.clock import millis
from core.feed import TimelineWrite
from core.ids import id_timestamp_ms
from stores import graph
from stores.cassandra import prepared
from stores.timelines import (
    DELETED,
    INSERT_AUTHOR_POST,
    INSERT_POST,
    WATERMARK,
    channel,
    k_author,
    k_built,
    k_stale,
    k_timeline,
)

MARK_DELETED = "UPDATE posts SET deleted=true, author_id=? WHERE post_id=?"
DELETE_AUTHOR_POST = "DELETE FROM posts_by_author WHERE author_id=? AND post_id=?"
PIPELINE_CHUNK = 5000
SCRIPT_READERS = 1000
# ARGV: post_id, op, cap, message, ts, topic, partition, offset, reader... (single-instance Redis:
# keys are derived from reader ids inside the script, so it is not Redis-Cluster safe)
FANOUT_LUA = """
local pid, op, cap, msg = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for i = 9, #ARGV do
  local r = ARGV[i]
  local key = 'TL' .. r
  if op == 'REMOVE' then
    redis.call('ZREM', key, pid)
  else
    redis.call('ZADD', key, pid, pid)
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  end
  redis.call('PUBLISH', 'FEED' .. r, msg)
  redis.call('HSET', 'FRESH' .. r, 'ts', ARGV[5], 'topic', ARGV[6], 'partition', ARGV[7], 'offset', ARGV[8])
end
return #ARGV - 8
""".replace("'TL'", repr(k_timeline(""))).replace("'FEED'", repr(channel(""))).replace("'FRESH'", "'fresh:'")


def write_posts_durable(session: Session, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Apply PostCreated/PostEdited/PostDeleted values to ``posts`` and ``posts_by_author``.

    Statements are issued in event order and awaited together: the driver's monotonic client
    timestamps keep that order for the same row. The author index is written at LOCAL_QUORUM, so a
    back-fill read at LOCAL_QUORUM that starts after this returns sees it (see docs/fanout.md).
    """
    futures = []
    for name, v in events:
        pid, author = v["post_id"], v["author_id"]
        stmts: list[tuple[Any, tuple[Any, ...]]]
        if name == "PostDeleted":
            stmts = [(prepared(session, MARK_DELETED), (author, pid)),
                     (prepared(session, DELETE_AUTHOR_POST), (author, pid))]
        else:
            media = json.dumps(list(v.get("media") or []))
            stmts = [(prepared(session, INSERT_POST), (
                pid, author, v["text"], media, list(v.get("links") or []),
                list(v.get("hashtags") or []), list(v.get("mentions") or []), v["visibility"],
                name == "PostEdited", id_timestamp_ms(pid), millis(v["occurred_at"]))),
                (prepared(session, INSERT_AUTHOR_POST), (author, pid, v["visibility"]))]
        for stmt, args in stmts:
            bound = stmt.bind(args)
            bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
            futures.append(session.execute_async(bound))
    for f in futures:
        f.result()


def graph_snapshot(r: _redis.Redis, authors: Iterable[str], friends_of: Iterable[str]
                   ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Followers of every author and friends of ``friends_of`` in one pipeline."""
    authors, friends_of = sorted(set(authors)), sorted(set(friends_of))
    p = r.pipeline(transaction=False)
    for a in authors:
        p.smembers(graph.k_followers(a))
    for a in friends_of:
        p.smembers(graph.k_friends(a))
    out = p.execute()
    dec = lambda xs: {x.decode() if isinstance(x, bytes) else x for x in xs}
    fol = {a: dec(xs) for a, xs in zip(authors, out[:len(authors)])}
    fr = {a: dec(xs) for a, xs in zip(friends_of, out[len(authors):])}
    return fol, fr


class RedisBatch:
    """Collects one batch's Redis commands and runs them as chunked non-transactional pipelines."""

    def __init__(self, r: _redis.Redis, cap: int) -> None:
        self.r = r
        self.cap = cap
        self.p = r.pipeline(transaction=False)
        self.script = r.register_script(FANOUT_LUA)

    def _maybe_flush(self) -> None:
        if len(self.p) >= PIPELINE_CHUNK:
            self.p.execute()

    def post_cache(self, name: str, v: Mapping[str, Any], author_cap: int) -> None:
        """Refresh the post-content cache and ``ap:{author}`` (and the global deleted set)."""
        pid, author = v["post_id"], v["author_id"]
        self.p.delete(f"post:{pid}")
        if name == "PostDeleted":
            self.p.sadd(DELETED, pid)
            self.p.zrem(k_author(author), str(pid))
        else:
            self.p.zadd(k_author(author), {str(pid): pid})
            self.p.zremrangebyrank(k_author(author), 0, -(author_cap + 1))

    def evict(self, readers: Iterable[str]) -> None:
        """Drop skipped (inactive) readers' timelines and mark them stale."""
        for rd in readers:
            self.p.delete(k_timeline(rd), k_built(rd))
            self.p.set(k_stale(rd), "1")

    def writes(self, writes: Iterable[TimelineWrite], source: Mapping[str, Any]) -> None:
        """Apply writes server-side: one script call per (post, op) group of up to 1,000 readers.

        Each reader gets ZADD (+ trim to the cap) or ZREM, a PUBLISH on ``feed:{r}`` and its
        freshness hash, like :func:`stores.timelines.apply_writes`, without one client reply
        per command (reply parsing was ~85% of fan-out time, see docs/fanout.md).
        """
        fresh = [str(source[k]) for k in ("ts", "topic", "partition", "offset")]
        for (pid, author, op), group in groupby(writes, key=lambda w: (w.post_id, w.author_id, w.op)):
            readers = [w.reader_id for w in group]
            msg = json.dumps({"post_id": pid, "author_id": author, "op": op})
            for i in range(0, len(readers), SCRIPT_READERS):
                self.script(args=[str(pid), op, self.cap, msg, *fresh, *readers[i:i + SCRIPT_READERS]],
                            client=self.p)
            self._maybe_flush()

    def run(self, watermarks: Mapping[tuple[str, int], int] | None = None) -> None:
        """Record the partitions' watermarks and execute everything queued."""
        for (topic, part), off in (watermarks or {}).items():
            self.p.hset(WATERMARK, f"{topic}:{part}", str(off))
        self.p.execute()


def recent_author_posts(session: Session, author: str, limit: int) -> list[tuple[int, str]]:
    """``author``'s newest posts (post_id, visibility) read at LOCAL_QUORUM (back-fill, purge)."""
    stmt = prepared(session, "SELECT post_id, visibility FROM posts_by_author WHERE author_id=? LIMIT ?")
    bound = stmt.bind((author, limit))
    bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    return [(row.post_id, row.visibility) for row in session.execute(bound)]
