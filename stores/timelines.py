"""Home timelines: Redis (hot, capped), rebuilt from the Cassandra author index; the one write path.

Redis key layout (``{r}`` reader id):

- ``tl:{r}``        ZSET of post ids (member = decimal id, score = id, exact in a double), capped
- ``tlstale:{r}``   set when fan-out skipped ``r`` as inactive: rebuild from Cassandra on next read
- ``tlb:{r}``       "1" for 5 minutes after a rebuild (so an empty timeline is not rebuilt per read);
                    a missing ``tl:{r}`` without ``tlb:{r}`` (e.g. evicted by maxmemory) also rebuilds
- ``tlok:{r}``      "1" once ``r``'s timeline was rebuilt from Cassandra in this Redis (no TTL). Redis
                    runs without persistence: after a restart or FLUSHALL the marker is gone, so the
                    reader's next read rebuilds once, even if fan-out already recreated ``tl:{r}``
                    with the posts it pushed since (a rebuild adds to what is there)
- ``tllock:{r}``    rebuild lock (SET NX PX); ``tlrebuilds:{r}`` counts rebuilds (INCR)
- ``neg:a:{r}``     SET of authors hidden from ``r`` (unfollowed, blocked either way): read filter
- ``readers:seen``  ZSET reader -> last-seen epoch ms (inactive readers are not pushed to)
- ``fresh:{r}``     HASH ts/topic/partition/offset of the newest source event applied to ``r``
- ``progress:fanout`` HASH "topic:partition" -> last offset fully applied by fan-out (:mod:`stores.progress`)
- pub/sub channel ``feed:{r}``: JSON ``{"post_id", "author_id", "op"}`` per timeline change

Both timeline writers (the fan-out and graph workers) go through :class:`TimelineBatch`: one
server-side script call per (post, op) group of readers (ZADD + trim or ZREM, PUBLISH, freshness),
without one client reply per command (see docs/fanout.md). Home timelines are not stored in
Cassandra: a timeline is rebuilt from the author index of the reader's followees
(:mod:`stores.posts`; docs/fanout.md has the measurements behind this).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import redis as _redis
from cassandra.cluster import Session

from core.feed import REMOVE, TimelineWrite, merge_newest, visible_to
from core.settings import Settings
from stores import graph, moderation, progress
from stores import posts as post_store
from stores import redis as redis_store

SEEN = "readers:seen"
WATERMARK = progress.key("fanout")
PIPELINE_CHUNK = 5000
SCRIPT_READERS = 1000


def k_timeline(r: str) -> str:
    """Redis key of reader ``r``'s timeline."""
    return redis_store.tagged("tl:", r)


def k_built(r: str) -> str:
    """Redis key marking ``r``'s timeline complete."""
    return redis_store.tagged("tlb:", r)


def k_stale(r: str) -> str:
    """Redis key marking ``r``'s timeline stale (skipped while inactive)."""
    return redis_store.tagged("tlstale:", r)


def k_ok(r: str) -> str:
    """Redis key marking ``r``'s timeline as rebuilt at least once in this Redis."""
    return redis_store.tagged("tlok:", r)


def k_lock(r: str) -> str:
    """Redis key of ``r``'s rebuild lock."""
    return redis_store.tagged("tllock:", r)


def k_rebuilds(r: str) -> str:
    """Redis key counting ``r``'s rebuilds."""
    return redis_store.tagged("tlrebuilds:", r)


def k_negative(r: str) -> str:
    """Redis key of authors hidden from ``r``."""
    return redis_store.tagged("neg:a:", r)


def k_fresh(r: str) -> str:
    """Redis key of the newest source event applied to ``r``'s timeline."""
    return redis_store.tagged("fresh:", r)


def channel(r: str) -> str:
    """Pub/sub channel of ``r``'s timeline changes (and of its realtime notifications)."""
    return f"feed:{r}"


def message(post_id: int, author_id: str, op: str, source: Mapping[str, Any]) -> str:
    """The pub/sub message of one timeline change (with the source's ``traceparent`` when traced,
    for the realtime push's span)."""
    msg: dict[str, Any] = {"post_id": post_id, "author_id": author_id, "op": op}
    if source.get("traceparent"):
        msg["traceparent"] = source["traceparent"]
    return json.dumps(msg)


def _now() -> int:
    return int(time.time() * 1000)


# -- writes by the topologies ---------------------------------------------------------------
# ARGV: post_id, op, cap, message, ts, topic, partition, offset, reader... (single-instance Redis:
# keys are derived from reader ids inside the script, so it is not Redis-Cluster safe)
FANOUT_LUA = redis_store.lua_key_functions(TL=k_timeline, FEED=channel, FRESH=k_fresh) + """
local pid, op, cap, msg = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for i = 9, #ARGV do
  local r = ARGV[i]
  local key = TL(r)
  if op == 'REMOVE' then
    redis.call('ZREM', key, pid)
  else
    redis.call('ZADD', key, pid, pid)
    redis.call('ZREMRANGEBYRANK', key, 0, -(cap + 1))
  end
  redis.call('PUBLISH', FEED(r), msg)
  redis.call('HSET', FRESH(r), 'ts', ARGV[5], 'topic', ARGV[6], 'partition', ARGV[7], 'offset', ARGV[8])
end
return #ARGV - 8
"""


def _template(key_fn: Any) -> list[str]:
    """A key function as (prefix, suffix) around the id, e.g. ``tl:{r}`` -> ``["tl:", ""]``; a
    hash-tagged naming (``tl:{{r}}``) gives ``["tl:{", "}"]``: Lua builds keys the same way."""
    pre, _, suf = key_fn("\x00").partition("\x00")
    return [pre, suf]


# One post's fan-out, walked server-side over its author's follower set (single-instance Redis).
# KEYS: followers, friends (of the author), readers:seen, author's tl, author's fresh.
# ARGV: author, post_id, op (ADD | EDIT | DELETE), cap, message of op, message of REMOVE,
#   ts, topic, partition, offset, celebrity threshold, inactive cutoff ms (last seen before it =
#   inactive; "-inf" for none), friends_only (0/1), SSCAN cursor ("0" = first call: the author's own
#   write), count, then (prefix, suffix) of the tl, feed, fresh, tlb and tlstale key functions.
# Returns {next cursor, readers written with op, readers written with REMOVE, readers evicted};
# a celebrity's post (not a delete) writes the author's own timeline only.
WALK_LUA = """
local author, pid, op, cap = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local cutoff, friends_only, cursor = tonumber(ARGV[12]), ARGV[13] == '1', ARGV[14]
local T = {tl = {ARGV[16], ARGV[17]}, feed = {ARGV[18], ARGV[19]}, fresh = {ARGV[20], ARGV[21]},
           built = {ARGV[22], ARGV[23]}, stale = {ARGV[24], ARGV[25]}}
local function key(kind, r) return T[kind][1] .. r .. T[kind][2] end
local function write(tl, fresh, channel, remove)
  if remove then
    redis.call('ZREM', tl, pid)
  else
    redis.call('ZADD', tl, pid, pid)
    redis.call('ZREMRANGEBYRANK', tl, 0, -(cap + 1))
  end
  redis.call('PUBLISH', channel, remove and ARGV[6] or ARGV[5])
  redis.call('HSET', fresh, 'ts', ARGV[7], 'topic', ARGV[8], 'partition', ARGV[9], 'offset', ARGV[10])
end
local delete = op == 'DELETE'
if cursor == '0' then write(KEYS[4], KEYS[5], key('feed', author), delete) end
if not delete then
  local n = redis.call('SCARD', KEYS[1]) - redis.call('SISMEMBER', KEYS[1], author)
  if n > tonumber(ARGV[11]) then return {'0', {}, {}, {}} end
end
local scan = redis.call('SSCAN', KEYS[1], cursor, 'COUNT', tonumber(ARGV[15]))
local done, removed, evicted = {}, {}, {}
for _, r in ipairs(scan[2]) do
  if r ~= author then
    local remove = delete
    local target = true
    if not delete and friends_only and redis.call('SISMEMBER', KEYS[2], r) == 0 then
      remove, target = true, op == 'EDIT'
    end
    if target and not delete then
      local seen = redis.call('ZSCORE', KEYS[3], r)
      if seen and tonumber(seen) < cutoff then
        redis.call('DEL', key('tl', r), key('built', r))
        redis.call('SET', key('stale', r), '1')
        evicted[#evicted + 1] = r
        target = false
      end
    end
    if target then
      write(key('tl', r), key('fresh', r), key('feed', r), remove)
      if remove then removed[#removed + 1] = r else done[#done + 1] = r end
    end
  end
end
return {scan[1], done, removed, evicted}
"""
WALK_COUNT = 1000  # follower set members per script call (bounds one call's time)


@dataclass(frozen=True)
class PostFanout:
    """One post event to fan out: op ``ADD``/``EDIT``, or ``DELETE`` (every follower REMOVEs)."""

    post_id: int
    author_id: str
    op: str
    friends_only: bool
    source: Mapping[str, Any]


def walk_fanout(r: _redis.Redis, posts: list[PostFanout], *, cap: int, celebrity_threshold: int,
                inactive_cutoff_ms: float | None, pipeline: Any = None
                ) -> list[tuple[list[TimelineWrite], list[str]]]:
    """Fan ``posts`` out server-side (:data:`WALK_LUA`): per post its writes (author's first) and
    the readers evicted as inactive.

    Round ``k`` sends the ``k``-th chunk of every post still walking, in order, as one pipeline: a
    post by an author with at most :data:`WALK_COUNT` followers costs one script call, and the
    whole batch one round trip; a larger follower set adds one round trip per chunk. Each reader
    appears at most once per post, though SSCAN may repeat one across rounds (:func:`collect_round`).
    Single-instance
    Redis only (reader keys are built in the script); Redis Cluster goes through
    :meth:`TimelineBatch.writes`.

    ``pipeline``: commands the caller queued to run before the walk (e.g. the batch's post cache
    updates, :attr:`TimelineBatch.pipeline`), sent with the first round: their results are dropped.
    """
    script = r.register_script(WALK_LUA)
    tpl = [x for fn in (k_timeline, channel, k_fresh, k_built, k_stale) for x in _template(fn)]
    cutoff = "-inf" if inactive_cutoff_ms is None else str(inactive_cutoff_ms)
    out: list[tuple[list[TimelineWrite], list[str]]] = []
    cursors: list[str | None] = []
    seen: list[set[str]] = [{post.author_id} for post in posts]  # per post: readers already written
    for post in posts:
        own = REMOVE if post.op == "DELETE" else post.op
        out.append(([TimelineWrite(post.author_id, post.post_id, post.author_id, own)], []))
        cursors.append("0")
    while any(c is not None for c in cursors):
        p = pipeline if pipeline is not None else redis_store.pipeline(r)
        skip, pipeline = (len(p) if p is pipeline else 0), None
        live = [i for i, c in enumerate(cursors) if c is not None]
        for i in live:
            post = posts[i]
            own = REMOVE if post.op == "DELETE" else post.op
            msg = message(post.post_id, post.author_id, own, post.source)
            rm = message(post.post_id, post.author_id, REMOVE, post.source)
            src = [str(post.source[k]) for k in ("ts", "topic", "partition", "offset")]
            keys = [graph.k_followers(post.author_id), graph.k_friends(post.author_id), SEEN,
                    k_timeline(post.author_id), k_fresh(post.author_id)]
            script(keys=keys, args=[post.author_id, str(post.post_id), post.op, cap, msg, rm, *src,
                                    celebrity_threshold, cutoff, int(post.friends_only), cursors[i],
                                    WALK_COUNT, *tpl], client=p)
        for i, (nxt, done, removed, evicted) in zip(live, p.execute()[skip:]):
            post, (writes, inactive) = posts[i], out[i]
            collect_round(post, seen[i], writes, inactive, done, removed, evicted)
            cursors[i] = None if nxt in (b"0", "0") else nxt.decode()
    return out


def collect_round(post: PostFanout, seen: set[str], writes: list[TimelineWrite], inactive: list[str],
                  done: Iterable[bytes], removed: Iterable[bytes], evicted: Iterable[bytes]) -> None:
    """Append one walk round's readers to ``post``'s writes and evicted readers, each reader once.

    SSCAN guarantees every member present for the whole scan at least once, not at most once: a
    follower set rehashed between two rounds (a large author's walk spans several calls) can hand
    a member back again. Its Redis writes are idempotent (ZADD, ZREM, HSET of the same values; only
    the notification is published twice), but its TimelineUpdate must not be emitted twice, so a
    reader ``seen`` in an earlier round (or twice in this one) is dropped here.
    """
    op = REMOVE if post.op == "DELETE" else post.op
    for members, kind in ((done, op), (removed, REMOVE), (evicted, None)):
        for x in members:
            reader = x.decode() if isinstance(x, bytes) else x
            if reader in seen:
                continue
            seen.add(reader)
            if kind is None:
                inactive.append(reader)
            else:
                writes.append(TimelineWrite(reader, post.post_id, post.author_id, kind))


PUBLISH_LUA = "for i = 1, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return #ARGV / 2"


class TimelineBatch:
    """Collects one batch's timeline commands and runs them as chunked non-transactional pipelines.

    :attr:`pipeline` is open to other stores' commands of the same batch (e.g. the post caches,
    :func:`stores.posts.queue_cache_update`), which then run in the order they were queued.
    """

    def __init__(self, r: _redis.Redis, cap: int) -> None:
        self.r = r
        self.cap = cap
        self.pipeline = redis_store.pipeline(r)
        self.cluster = redis_store.is_cluster(r)
        self._pubs: list[str] = []  # channel, message, ... (Redis Cluster: published after the writes)
        self.script = r.register_script(FANOUT_LUA)

    def _maybe_flush(self) -> None:
        if len(self.pipeline) >= PIPELINE_CHUNK:
            self._execute()

    def _execute(self) -> list[Any]:
        """Run the queued commands, then (Redis Cluster) their publishes: redis-py refuses PUBLISH in
        a cluster pipeline, so one keyless script per chunk publishes them (a PUBLISH on any node
        reaches every node's subscribers)."""
        out = self.pipeline.execute()
        for i in range(0, len(self._pubs), 2 * SCRIPT_READERS):
            self.r.eval(PUBLISH_LUA, 0, *self._pubs[i:i + 2 * SCRIPT_READERS])
        self._pubs = []
        return out

    def evict(self, readers: Iterable[str]) -> None:
        """Drop skipped (inactive) readers' timelines and mark them stale."""
        for rd in readers:
            self.pipeline.delete(k_timeline(rd), k_built(rd))
            self.pipeline.set(k_stale(rd), "1")

    def writes(self, writes: Iterable[TimelineWrite], source: Mapping[str, Any]) -> None:
        """Apply writes server-side: one script call per (post, op) group of up to 1,000 readers.

        Each reader gets ZADD (+ trim to the cap) or ZREM, a PUBLISH on ``feed:{r}`` and its
        freshness hash ``fresh:{r}`` (``source``'s ts/topic/partition/offset), without one client
        reply per command (reply parsing was ~85% of fan-out time, see docs/fanout.md).
        """
        fresh = [str(source[k]) for k in ("ts", "topic", "partition", "offset")]
        for (pid, author, op), group in groupby(writes, key=lambda w: (w.post_id, w.author_id, w.op)):
            readers = [w.reader_id for w in group]
            msg = message(pid, author, op, source)
            if self.cluster:
                self._plain(pid, op, msg, fresh, readers)
                continue
            for i in range(0, len(readers), SCRIPT_READERS):
                self.script(args=[str(pid), op, self.cap, msg, *fresh, *readers[i:i + SCRIPT_READERS]],
                            client=self.pipeline)
            self._maybe_flush()

    def _plain(self, pid: int, op: str, msg: str, fresh: list[str], readers: list[str]) -> None:
        """Redis Cluster: the script's commands, one reader at a time, on the (cluster) pipeline,
        which sends each node its own commands: one round trip per node per execute."""
        p = self.pipeline
        for rd in readers:
            tl = k_timeline(rd)
            if op == REMOVE:
                p.zrem(tl, str(pid))
            else:
                p.zadd(tl, {str(pid): pid})
                p.zremrangebyrank(tl, 0, -(self.cap + 1))
            self._pubs += [channel(rd), msg]
            p.hset(k_fresh(rd), mapping=dict(zip(("ts", "topic", "partition", "offset"), fresh)))
        self._maybe_flush()

    def run(self, watermarks: Mapping[tuple[str, int], int] | None = None, topology: str = "fanout") -> None:
        """Execute everything queued, then raise ``topology``'s progress marks to ``watermarks``
        (:mod:`stores.progress`: after the writes, in the same pipeline; Redis Cluster refuses scripts
        in a pipeline, so there the marks follow as their own call)."""
        if watermarks and not self.cluster:
            progress.queue_mark(self.r, topology, watermarks, client=self.pipeline)
        self._execute()
        if watermarks and self.cluster:
            progress.mark(self.r, topology, watermarks)


def apply_writes(r: _redis.Redis, writes: Iterable[TimelineWrite], *, cap: int,
                 source: Mapping[str, Any]) -> None:
    """Apply timeline writes now (one :class:`TimelineBatch`): ZADD/ZREM, trim, publish, freshness."""
    batch = TimelineBatch(r, cap)
    batch.writes(writes, source)
    batch.run()


def evict_inactive(r: _redis.Redis, readers: Iterable[str]) -> None:
    """Drop skipped readers' Redis timelines and mark them stale: their next read rebuilds them."""
    readers = list(readers)
    if not readers:
        return
    p = r.pipeline(transaction=False)
    for rd in readers:
        p.delete(k_timeline(rd), k_built(rd))
        p.set(k_stale(rd), "1")
    p.execute()


def hide_author(r: _redis.Redis, reader: str, author: str, hidden: bool) -> None:
    """Add (or remove) ``author`` in ``reader``'s negative set; takes effect on the next read."""
    (r.sadd if hidden else r.srem)(k_negative(reader), author)


def mark_watermark(r: _redis.Redis, topic: str, partition: int, offset: int) -> None:
    """Record that fan-out fully applied ``topic[partition]`` up to ``offset``."""
    progress.mark(r, "fanout", {(topic, partition): offset})


# -- reads (the read API calls these) -------------------------------------------------------
def touch_reader(r: _redis.Redis, reader: str, at_ms: int | None = None) -> None:
    """Record that ``reader`` was active at ``at_ms`` (now by default)."""
    r.zadd(SEEN, {reader: at_ms if at_ms is not None else _now()})


def last_seen(r: _redis.Redis, readers: list[str]) -> dict[str, float | None]:
    """Last-seen ms of each reader (None if never seen)."""
    if not readers:
        return {}
    return dict(zip(readers, r.zmscore(SEEN, readers)))


def timeline_page(r: _redis.Redis, reader_id: str, before_score: int | None, limit: int) -> list[int]:
    """Raw page of ``reader_id``'s Redis timeline: post ids below ``before_score``, newest first."""
    hi = f"({before_score}" if before_score is not None else "+inf"
    return [int(m) for m in r.zrevrangebyscore(k_timeline(reader_id), hi, "-inf", start=0, num=limit)]


def negative_filter(r: _redis.Redis, reader: str, posts: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Drop hydrated posts that are deleted, by a hidden author, or hidden by moderation (others'
    posts only): three O(page) set lookups in one round trip."""
    if not posts:
        return []
    p = r.pipeline(transaction=False)
    p.smismember(k_negative(reader), [x["author_id"] for x in posts])
    p.smismember(post_store.DELETED, [x["post_id"] for x in posts])
    p.smismember(moderation.HIDDEN, [x["post_id"] for x in posts])
    hidden, deleted, moderated = p.execute()
    return [x for x, h, d, m in zip(posts, hidden, deleted, moderated)
            if not h and not d and not x.get("deleted") and not (m and x["author_id"] != reader)]


def rebuild_timeline(r: _redis.Redis, session: Session, reader: str, settings: Settings,
                     wait_s: float = 5.0) -> bool:
    """Rebuild ``tl:{reader}`` from the author index exactly once; True if this call rebuilt it."""
    lock = k_lock(reader)
    if not r.set(lock, "1", nx=True, px=settings.rebuild_lock_ms):
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and needs_rebuild(r, reader):
            time.sleep(0.02)
        return False
    try:
        if not needs_rebuild(r, reader):
            return False
        ids = _compute_timeline(r, session, reader, settings)
        p = redis_store.multi(r)
        if ids:
            p.zadd(k_timeline(reader), {str(i): i for i in ids})
            p.zremrangebyrank(k_timeline(reader), 0, -(settings.timeline_cap + 1))
        p.set(k_built(reader), "1", ex=300)
        p.set(k_ok(reader), "1")
        p.delete(k_stale(reader))
        p.incr(k_rebuilds(reader))
        p.execute()
        touch_reader(r, reader)
        return True
    finally:
        r.delete(lock)


def _compute_timeline(r: _redis.Redis, session: Session, reader: str, s: Settings) -> list[int]:
    """Newest ``cap`` post ids a reader's followees (non-celebrities) pushed or would push, and the
    reader's own posts (fan-out pushes an author's posts to the author's own timeline too).

    The reader's and followees' graph sets are first loaded from Cassandra if this Redis lost them
    (:func:`stores.graph.ensure_loaded`); then one Redis pipeline for the followees' follower
    counts and friendships, and every author's index query in flight at once (a reader following
    500 authors costs ~1 round trip, not 500).
    """
    graph.ensure_loaded(r, session, [reader])
    followees = sorted(graph.following(r, reader) - {reader})
    graph.ensure_loaded(r, session, followees)
    authors: list[tuple[str, bool]] = []
    if followees:
        p = r.pipeline(transaction=False)
        for author in followees:
            p.scard(graph.k_followers(author))
            p.sismember(graph.k_friends(author), reader)
        res = p.execute()
        authors = [(a, bool(res[2 * i + 1])) for i, a in enumerate(followees)
                   if int(res[2 * i]) <= s.celebrity_threshold]
    futures = [post_store.author_index_async(session, a, None, s.rebuild_per_author) for a, _ in authors]
    own = post_store.author_index_async(session, reader, None, s.rebuild_per_author)
    lists = [[row.post_id for row in own.result()]]
    for (_, friend), fut in zip(authors, futures):
        lists.append([row.post_id for row in fut.result()
                      if visible_to(row.visibility, is_author=False, follows=True, is_friend=friend)])
    return merge_newest(*lists, before=None, limit=s.timeline_cap)


def needs_rebuild(r: _redis.Redis, reader: str) -> bool:
    """Whether ``tl:{reader}`` is stale (skipped while inactive), missing (evicted), or was never
    rebuilt in this Redis (``tlok:{reader}`` absent: never read, or Redis lost its data)."""
    p = r.pipeline(transaction=False)
    p.exists(k_stale(reader))
    p.exists(k_timeline(reader))
    p.exists(k_built(reader))
    p.exists(k_ok(reader))
    stale, present, built, ok = p.execute()
    return bool(stale) or not ok or (not present and not built)


def ensure_timeline(r: _redis.Redis, session: Session, reader: str, settings: Settings) -> None:
    """Make sure ``tl:{reader}`` is complete (rebuilding it if it was skipped or evicted)."""
    if needs_rebuild(r, reader):
        rebuild_timeline(r, session, reader, settings)


def freshness(r: _redis.Redis, reader: str) -> dict[str, str]:
    """The newest source event applied to ``reader``'s timeline (ts, topic, partition, offset)."""
    return {k.decode(): v.decode() for k, v in r.hgetall(k_fresh(reader)).items()}
