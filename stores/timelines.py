"""Home timelines, author post index and post content: Redis (hot, capped) and Cassandra (durable).

Redis key layout (``{r}`` reader id, ``{a}`` author id):

- ``tl:{r}``        ZSET of post ids (member = decimal id, score = id, exact in a double), capped
- ``tlstale:{r}``   set when fan-out skipped ``r`` as inactive: rebuild from Cassandra on next read
- ``tlb:{r}``       "1" for 5 minutes after a rebuild (so an empty timeline is not rebuilt per read);
                    a missing ``tl:{r}`` without ``tlb:{r}`` (e.g. evicted by maxmemory) also rebuilds
- ``tllock:{r}``    rebuild lock (SET NX PX); ``tlrebuilds:{r}`` counts rebuilds (INCR)
- ``neg:a:{r}``     SET of authors hidden from ``r`` (unfollowed, blocked either way): read filter
- ``posts:deleted`` SET of deleted post ids: read filter for every reader
- ``readers:seen``  ZSET reader -> last-seen epoch ms (inactive readers are not pushed to)
- ``fresh:{r}``     HASH ts/topic/partition/offset of the newest source event applied to ``r``
- ``fanout:wm``     HASH "topic:partition" -> last offset fully applied by fan-out
- ``ap:{a}``        ZSET of ``a``'s recent post ids (capped cache of ``posts_by_author``)
- ``post:{id}``     JSON of the post content (cache of the ``posts`` table, 1 day TTL)
- pub/sub channel ``feed:{r}``: JSON ``{"post_id", "author_id", "op"}`` per timeline change

Cassandra: ``posts`` (content by id, with edited/deleted flags) and ``posts_by_author`` (newest
first). Home timelines are not stored in Cassandra: a timeline is rebuilt from the author index
of the reader's followees (docs/fanout.md has the measurements behind this).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

import redis as _redis
from cassandra.cluster import Session

from core.clock import millis
from core.feed import REMOVE, TimelineWrite, merge_newest, visible_to
from core.ids import id_timestamp_ms
from core.settings import Settings
from stores import graph
from stores.cassandra import prepared

DDL: list[str] = [
    "CREATE TABLE IF NOT EXISTS {ks}.posts (post_id bigint PRIMARY KEY, author_id text, text text, "
    "media text, links list<text>, hashtags list<text>, mentions list<text>, visibility text, "
    "edited boolean, deleted boolean, created_at bigint, updated_at bigint)",
    "CREATE TABLE IF NOT EXISTS {ks}.posts_by_author (author_id text, post_id bigint, visibility text, "
    "PRIMARY KEY ((author_id), post_id)) WITH CLUSTERING ORDER BY (post_id DESC)",
]
INSERT_POST = ("INSERT INTO posts (post_id, author_id, text, media, links, hashtags, mentions, visibility, "
               "edited, deleted, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,false,?,?)")
INSERT_AUTHOR_POST = "INSERT INTO posts_by_author (author_id, post_id, visibility) VALUES (?,?,?)"
DELETED = "posts:deleted"
SEEN = "readers:seen"
WATERMARK = "fanout:wm"


def k_timeline(r: str) -> str:
    """Redis key of reader ``r``'s timeline."""
    return f"tl:{r}"


def k_built(r: str) -> str:
    """Redis key marking ``r``'s timeline complete."""
    return f"tlb:{r}"


def k_stale(r: str) -> str:
    """Redis key marking ``r``'s timeline stale (skipped while inactive)."""
    return f"tlstale:{r}"


def k_negative(r: str) -> str:
    """Redis key of authors hidden from ``r``."""
    return f"neg:a:{r}"


def k_author(a: str) -> str:
    """Redis key of ``a``'s recent post ids."""
    return f"ap:{a}"


def channel(r: str) -> str:
    """Pub/sub channel of ``r``'s timeline changes."""
    return f"feed:{r}"


def _now() -> int:
    return int(time.time() * 1000)


# -- post content and author index ---------------------------------------------------------
def put_post(session: Session, r: _redis.Redis, v: Mapping[str, Any], *, edited: bool) -> None:
    """Store a PostCreated/PostEdited value in ``posts``, ``posts_by_author`` and the Redis caches."""
    at = v["occurred_at"]
    at_ms = millis(at)
    media = json.dumps(list(v.get("media") or []))
    futures = [
        session.execute_async(prepared(session, INSERT_POST), (
            v["post_id"], v["author_id"], v["text"], media, list(v.get("links") or []),
            list(v.get("hashtags") or []), list(v.get("mentions") or []), v["visibility"], edited,
            id_timestamp_ms(v["post_id"]), at_ms)),
        session.execute_async(prepared(session, INSERT_AUTHOR_POST),
                              (v["author_id"], v["post_id"], v["visibility"])),
    ]
    for f in futures:
        f.result()
    p = r.pipeline(transaction=False)
    p.delete(f"post:{v['post_id']}")
    p.zadd(k_author(v["author_id"]), {str(v["post_id"]): v["post_id"]})
    p.execute()


def delete_post(session: Session, r: _redis.Redis, post_id: int, author_id: str) -> None:
    """Mark a post deleted (content flag, global negative set) and drop it from the author index."""
    p = r.pipeline(transaction=False)
    p.sadd(DELETED, post_id)
    p.zrem(k_author(author_id), str(post_id))
    p.delete(f"post:{post_id}")
    p.execute()
    session.execute("UPDATE posts SET deleted=true, author_id=%s WHERE post_id=%s", (author_id, post_id))
    session.execute("DELETE FROM posts_by_author WHERE author_id=%s AND post_id=%s", (author_id, post_id))


def trim_author_cache(r: _redis.Redis, author: str, cap: int) -> None:
    """Keep only the newest ``cap`` ids in ``ap:{author}``."""
    r.zremrangebyrank(k_author(author), 0, -(cap + 1))


def get_posts(session: Session, r: _redis.Redis, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Hydrate post ids into content dicts (Redis cache, then Cassandra); unknown ids are absent."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    out: dict[int, dict[str, Any]] = {}
    if not ids:
        return out
    for pid, raw in zip(ids, r.mget([f"post:{i}" for i in ids])):
        if raw:
            out[pid] = json.loads(raw)
    missing = [i for i in ids if i not in out]
    if missing:
        rows = session.execute(prepared(session, "SELECT * FROM posts WHERE post_id IN ?"), (missing,))
        p = r.pipeline(transaction=False)
        for row in rows:
            d = row._asdict()
            d["media"] = json.loads(d["media"] or "[]")
            for k in ("links", "hashtags", "mentions"):
                d[k] = list(d[k] or [])
            out[d["post_id"]] = d
            p.set(f"post:{d['post_id']}", json.dumps(d), ex=86_400)
        p.execute()
    return out


def author_posts(session: Session, author_id: str, before: int | None, limit: int) -> list[tuple[int, str]]:
    """``author_id``'s newest posts below ``before`` as (post_id, visibility), newest first."""
    if before is None:
        rows = session.execute("SELECT post_id, visibility FROM posts_by_author WHERE author_id=%s "
                               "LIMIT %s", (author_id, limit))
    else:
        rows = session.execute("SELECT post_id, visibility FROM posts_by_author WHERE author_id=%s "
                               "AND post_id < %s LIMIT %s", (author_id, before, limit))
    return [(row.post_id, row.visibility) for row in rows]


# -- writes by the topologies ---------------------------------------------------------------
def apply_writes(r: _redis.Redis, writes: list[TimelineWrite], *, cap: int, source: Mapping[str, Any],
                 chunk: int = 2000) -> None:
    """Apply timeline writes: ZADD/ZREM, trim to ``cap``, publish on ``feed:{r}``, freshness."""
    fresh = {k: str(v) for k, v in source.items()}
    for i in range(0, len(writes), chunk):
        part = writes[i:i + chunk]
        p = r.pipeline(transaction=False)
        for w in part:
            key = k_timeline(w.reader_id)
            if w.op == REMOVE:
                p.zrem(key, str(w.post_id))
            else:
                p.zadd(key, {str(w.post_id): w.post_id})
            p.zremrangebyrank(key, 0, -(cap + 1))
            p.publish(channel(w.reader_id), json.dumps(
                {"post_id": w.post_id, "author_id": w.author_id, "op": w.op}))
            p.hset(f"fresh:{w.reader_id}", mapping=fresh)
        p.execute()


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


def timeline_post_ids_of(r: _redis.Redis, session: Session, reader: str, author: str,
                         cap: int) -> list[int]:
    """``author``'s post ids that may sit in ``reader``'s timeline (newest ``cap`` of the index)."""
    return [pid for pid, _ in author_posts(session, author, None, cap)]


def mark_watermark(r: _redis.Redis, topic: str, partition: int, offset: int) -> None:
    """Record that fan-out fully applied ``topic[partition]`` up to ``offset``."""
    r.hset(WATERMARK, f"{topic}:{partition}", offset)


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
    """Drop hydrated posts that are deleted or by a hidden author: two O(page) Redis calls."""
    if not posts:
        return []
    p = r.pipeline(transaction=False)
    p.smismember(k_negative(reader), [x["author_id"] for x in posts])
    p.smismember(DELETED, [x["post_id"] for x in posts])
    hidden, deleted = p.execute()
    return [x for x, h, d in zip(posts, hidden, deleted)
            if not h and not d and not x.get("deleted")]


def celebrity_posts(r: _redis.Redis, session: Session, reader: str, before: int | None, limit: int,
                    threshold: int) -> list[int]:
    """Newest posts, visible to ``reader``, of the celebrities it follows (merged at read time)."""
    lists: list[list[int]] = []
    for celeb in graph.celebrity_followees(r, reader, threshold):
        friend = bool(r.sismember(graph.k_friends(celeb), reader))
        recent = author_posts(session, celeb, before, limit)
        lists.append([pid for pid, vis in recent
                      if visible_to(vis, is_author=False, follows=True, is_friend=friend)])
    return merge_newest(*lists, before=before, limit=limit)


def rebuild_timeline(r: _redis.Redis, session: Session, reader: str, settings: Settings,
                     wait_s: float = 5.0) -> bool:
    """Rebuild ``tl:{reader}`` from the author index exactly once; True if this call rebuilt it."""
    lock = f"tllock:{reader}"
    if not r.set(lock, "1", nx=True, px=settings.rebuild_lock_ms):
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and needs_rebuild(r, reader):
            time.sleep(0.02)
        return False
    try:
        if not needs_rebuild(r, reader):
            return False
        ids = _compute_timeline(r, session, reader, settings)
        p = r.pipeline(transaction=True)
        if ids:
            p.zadd(k_timeline(reader), {str(i): i for i in ids})
            p.zremrangebyrank(k_timeline(reader), 0, -(settings.timeline_cap + 1))
        p.set(k_built(reader), "1", ex=300)
        p.delete(k_stale(reader))
        p.incr(f"tlrebuilds:{reader}")
        p.execute()
        touch_reader(r, reader)
        return True
    finally:
        r.delete(lock)


def _compute_timeline(r: _redis.Redis, session: Session, reader: str, s: Settings) -> list[int]:
    """Newest ``cap`` post ids a reader's followees (non-celebrities) pushed or would push.

    One Redis pipeline for the followees' follower counts and friendships, then every author's
    index query in flight at once (a reader following 500 authors costs ~1 round trip, not 500).
    """
    followees = sorted(graph.following(r, reader))
    if not followees:
        return []
    p = r.pipeline(transaction=False)
    for author in followees:
        p.scard(graph.k_followers(author))
        p.sismember(graph.k_friends(author), reader)
    res = p.execute()
    authors = [(a, bool(res[2 * i + 1])) for i, a in enumerate(followees)
               if int(res[2 * i]) <= s.celebrity_threshold]
    stmt = prepared(session, "SELECT post_id, visibility FROM posts_by_author WHERE author_id=? LIMIT ?")
    futures = [session.execute_async(stmt, (a, s.rebuild_per_author)) for a, _ in authors]
    lists = []
    for (_, friend), fut in zip(authors, futures):
        lists.append([row.post_id for row in fut.result()
                      if visible_to(row.visibility, is_author=False, follows=True, is_friend=friend)])
    return merge_newest(*lists, before=None, limit=s.timeline_cap)


def needs_rebuild(r: _redis.Redis, reader: str) -> bool:
    """Whether ``tl:{reader}`` is stale (skipped while inactive) or missing (evicted, never built)."""
    p = r.pipeline(transaction=False)
    p.exists(k_stale(reader))
    p.exists(k_timeline(reader))
    p.exists(k_built(reader))
    stale, present, built = p.execute()
    return bool(stale) or (not present and not built)


def ensure_timeline(r: _redis.Redis, session: Session, reader: str, settings: Settings) -> None:
    """Make sure ``tl:{reader}`` is complete (rebuilding it if it was skipped or evicted)."""
    if needs_rebuild(r, reader):
        rebuild_timeline(r, session, reader, settings)


def read_home(r: _redis.Redis, session: Session, reader: str, before: int | None, limit: int,
              settings: Settings) -> list[dict[str, Any]]:
    """A home page: candidates (timeline + celebrities) -> hydrate -> negative filters -> page."""
    ensure_timeline(r, session, reader, settings)
    touch_reader(r, reader)
    out: list[dict[str, Any]] = []
    cursor = before
    for _ in range(5):  # refill when filters drop items
        want = limit * 2
        own = timeline_page(r, reader, cursor, want)
        celeb = celebrity_posts(r, session, reader, cursor, want, settings.celebrity_threshold)
        ids = merge_newest(own, celeb, before=cursor, limit=want)
        if not ids:
            break
        posts = get_posts(session, r, ids)
        out += negative_filter(r, reader, [posts[i] for i in ids if i in posts])
        cursor = ids[-1]
        if len(out) >= limit or len(ids) < want:
            break
    return out[:limit]


def freshness(r: _redis.Redis, reader: str) -> dict[str, str]:
    """The newest source event applied to ``reader``'s timeline (ts, topic, partition, offset)."""
    return {k.decode(): v.decode() for k, v in r.hgetall(f"fresh:{reader}").items()}
