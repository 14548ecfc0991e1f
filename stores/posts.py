"""Posts: content and the author index (Cassandra, durable) and their Redis caches; the one owner of both.

Cassandra: ``posts`` (content by id, with edited/deleted flags) and ``posts_by_author`` (newest
first per author). Written by the fan-out worker, read by the graph worker (back-fill, purge), the
timeline rebuild, the engagement worker (a shortcut to "the post exists"; it learns posts from
``posts.v1`` itself, see docs/reliability.md) and the API.

Redis key layout (``{a}`` author id):

- ``post:{id}``          JSON of the post content (cache of the ``posts`` table, 1 day TTL)
- ``ap:{a}``             ZSET of ``a``'s recent post ids (capped cache of ``posts_by_author``)
- ``posts:deleted``      SET of deleted post ids: read filter for every reader
- ``postowner:{id}``     author of a post, recorded by the API before the create event is produced
- ``postowner:{id}:deleted``  "1" once the API accepted the post's delete
- ``postver:{id}``       version (see below) of the newest posts.v1 event applied to the caches

Last writer wins by event time (issue 13/14, re-delivered events). Kafka delivery is at least once
and retries reuse event ids, so a ``PostCreated`` can be applied again after the post's edit or
delete. Every posts.v1 event has a version, :func:`version`: ``occurred_at`` in microseconds plus a
rank, create 0 < edit 1 < delete 2. Tie rule: at the same millisecond a delete wins over an edit
and an edit over a create; two edits in one millisecond resolve as Cassandra resolves equal
timestamps (the larger cell value), the same on every replica and in every replay.

- Cassandra: every ``posts`` and ``posts_by_author`` write carries ``USING TIMESTAMP <version>``,
  so an older event's cells lose to a newer one's whatever the order they arrive in, and the
  delete's tombstone on the author index shadows a re-sent create.
- Redis: :func:`queue_cache_update` is one script per event that applies it only if its version is
  not older than ``postver:{id}``; a cache fill (:func:`get_posts`) stores a row only if the row's
  write time (``WRITETIME(deleted)``, the newest version applied to the row) is not older either.
  ``postver`` lives 7 days; after that, or after a Redis loss, the read filters (``posts:deleted``,
  the row's ``deleted`` flag) and the Cassandra rows keep a deleted post hidden.
- The ownership keys (``postowner:*``) are written by the API only, at request time, never from
  the log; their delete marker is a key of its own that no create clears, so a delete wins there too.

Upgrade note: rows written before this rule carry the driver's wall-clock timestamps, newer than
any event's; truncate ``posts``/``posts_by_author`` and replay posts.v1 once after upgrading.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import redis as _redis
from cassandra import ConsistencyLevel
from cassandra.cluster import ResponseFuture, Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType
from redis.cluster import ClusterPipeline

from core.clock import millis
from core.ids import id_timestamp_ms
from stores import redis as redis_store
from stores.cassandra import prepared

DDL: list[str] = [
    ("CREATE TABLE IF NOT EXISTS {ks}.posts (post_id bigint PRIMARY KEY, author_id text, text text, "
    "media text, links list<text>, hashtags list<text>, mentions list<text>, visibility text, "
    "edited boolean, deleted boolean, created_at bigint, updated_at bigint)"),
    ("CREATE TABLE IF NOT EXISTS {ks}.posts_by_author (author_id text, post_id bigint, visibility text, "
    "PRIMARY KEY ((author_id), post_id)) WITH CLUSTERING ORDER BY (post_id DESC)"),
]
INSERT_POST = ("INSERT INTO posts (post_id, author_id, text, media, links, hashtags, mentions, visibility, "
               "edited, deleted, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,false,?,?) USING TIMESTAMP ?")
INSERT_AUTHOR_POST = "INSERT INTO posts_by_author (author_id, post_id, visibility) VALUES (?,?,?) USING TIMESTAMP ?"
MARK_DELETED = "UPDATE posts USING TIMESTAMP ? SET deleted=true, author_id=?, updated_at=? WHERE post_id=?"
DELETE_AUTHOR_POST = "DELETE FROM posts_by_author USING TIMESTAMP ? WHERE author_id=? AND post_id=?"
COLUMNS = ("post_id, author_id, text, media, links, hashtags, mentions, visibility, edited, deleted, "
           "created_at, updated_at")
SELECT_POSTS = f"SELECT {COLUMNS} FROM posts WHERE post_id IN ?"
SELECT_POSTS_VERSIONED = f"SELECT {COLUMNS}, WRITETIME(deleted) AS version FROM posts WHERE post_id IN ?"
SELECT_OWNER = "SELECT author_id, deleted FROM posts WHERE post_id=?"
SELECT_DELETED = "SELECT deleted FROM posts WHERE post_id=?"
INDEX_FIRST = "SELECT post_id, visibility FROM posts_by_author WHERE author_id=? LIMIT ?"
INDEX_BEFORE = "SELECT post_id, visibility FROM posts_by_author WHERE author_id=? AND post_id < ? LIMIT ?"
DELETED = "posts:deleted"
CACHE_TTL_S = 86_400
VERSION_TTL_S = 7 * 86_400
#: rank of each posts.v1 event at an equal ``occurred_at``: a delete beats an edit beats a create
RANK = {"PostCreated": 0, "PostEdited": 1, "PostDeleted": 2}

# KEYS: postver:{id}, post:{id}, ap:{author}, posts:deleted; ARGV: version, deleted (0/1), post id,
# author cap, version ttl. Applies the event's cache changes only if it is not older than the last.
CACHE_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
redis.call('DEL', KEYS[2])
if ARGV[2] == '1' then
  redis.call('SADD', KEYS[4], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
else
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[4]) + 1))
end
return 1
"""
# KEYS: postver:{id}, post:{id}; ARGV: row version, content JSON, ttl. Fill unless a newer event applied.
FILL_LUA = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if cur > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


def version(name: str, v: Mapping[str, Any]) -> int:
    """The last-writer-wins version of a posts.v1 event: ``occurred_at`` in µs plus its :data:`RANK`.

    Used as the Cassandra write timestamp of its rows and as the Redis caches' ``postver``.
    """
    return millis(v["occurred_at"]) * 1000 + RANK[name]


def applied_versions(r: _redis.Redis, post_ids: Iterable[int]) -> dict[int, int]:
    """``postver`` of each post (0 if none): the version of the newest event applied to its caches.

    One pipeline of single-key GETs (so it also runs on Redis Cluster). A lost Redis, or a version
    past its TTL, reads 0: nothing is then known to be newer.
    """
    pipe = r.pipeline(transaction=False)
    read = queue_versions(pipe, post_ids)
    return read(iter(pipe.execute()))


def queue_versions(p: Any, post_ids: Iterable[int]) -> Callable[[Iterator[Any]], dict[int, int]]:
    """Queue :func:`applied_versions`'s GETs on pipeline ``p`` (e.g. with other stores' reads of the
    same batch: one round trip); the returned reader takes the pipeline's results (an iterator, in
    queue order)."""
    ids = sorted(set(post_ids))
    for pid in ids:
        p.get(k_version(pid))
    return lambda results: {pid: int(next(results) or 0) for pid in ids}


def k_post(post_id: int | str) -> str:
    """Redis key of a post's cached content (hash-tagged on the id, with :func:`k_version`: one slot)."""
    return redis_store.tagged("post:", str(post_id))


def k_author(a: str) -> str:
    """Redis key of ``a``'s recent post ids."""
    return f"ap:{a}"


def k_version(post_id: int | str) -> str:
    """Redis key of the version of the newest posts.v1 event applied to a post's caches."""
    return redis_store.tagged("postver:", str(post_id))


def k_owner(post_id: int) -> str:
    """Redis key of a post's author as recorded by the API (ownership index)."""
    return f"postowner:{post_id}"


def k_owner_visibility(post_id: int) -> str:
    """Redis key of a post's visibility as last accepted by the API (ownership index; set on create and edit)."""
    return f"postowner:{post_id}:vis"


def k_owner_deleted(post_id: int) -> str:
    """Redis key marking a post deleted in the API's ownership index."""
    return f"postowner:{post_id}:deleted"


def _content(row: Any) -> dict[str, Any]:
    d = row._asdict()
    d["media"] = json.loads(d["media"] or "[]")
    for k in ("links", "hashtags", "mentions"):
        d[k] = list(d[k] or [])
    return d


# -- writes ------------------------------------------------------------------------------------
def put_post(session: Session, r: _redis.Redis, v: Mapping[str, Any], *, edited: bool) -> None:
    """Store a PostCreated/PostEdited value in ``posts``, ``posts_by_author`` and the Redis caches."""
    name = "PostEdited" if edited else "PostCreated"
    write_posts_durable(session, [(name, v)])
    p = r.pipeline(transaction=False)
    queue_cache_update(p, name, v, 1 << 30)
    p.execute()


WRITE_CONCURRENCY = 64  # statements (or per-partition batches) in flight per fan-out batch


def write_posts_durable(session: Session, events: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Apply PostCreated/PostEdited/PostDeleted values to ``posts`` and ``posts_by_author``.

    Statements are grouped by partition (one author's index rows, one post's events: an unlogged
    batch per partition with more than one) and issued asynchronously, at most
    :data:`WRITE_CONCURRENCY` in flight, then awaited together. Each carries its event's
    :func:`version` as write timestamp, so the newest event wins per cell in any arrival order and
    in any order inside a batch. Written at LOCAL_QUORUM, so a back-fill read at LOCAL_QUORUM that
    starts after this returns sees the author index (see docs/fanout.md).
    """
    groups: dict[tuple[str, Any], list[Any]] = {}
    for name, v in events:
        pid, author, ts, at = v["post_id"], v["author_id"], version(name, v), millis(v["occurred_at"])
        post: tuple[Any, tuple[Any, ...]]
        index: tuple[Any, tuple[Any, ...]]
        if name == "PostDeleted":
            post = (prepared(session, MARK_DELETED), (ts, author, at, pid))
            index = (prepared(session, DELETE_AUTHOR_POST), (ts, author, pid))
        else:
            media = json.dumps(list(v.get("media") or []))
            post = (prepared(session, INSERT_POST), (
                pid, author, v["text"], media, list(v.get("links") or []),
                list(v.get("hashtags") or []), list(v.get("mentions") or []), v["visibility"],
                name == "PostEdited", id_timestamp_ms(pid), at, ts))
            index = (prepared(session, INSERT_AUTHOR_POST), (author, pid, v["visibility"], ts))
        groups.setdefault(("posts", pid), []).append(post[0].bind(post[1]))
        groups.setdefault(("posts_by_author", author), []).append(index[0].bind(index[1]))
    statements = []
    for bound in groups.values():
        if len(bound) == 1:
            stmt = bound[0]
        else:
            stmt = BatchStatement(batch_type=BatchType.UNLOGGED)
            for b in bound:
                stmt.add(b)
        stmt.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        statements.append((stmt, None))
    for ok, result in execute_concurrent(session, statements, concurrency=WRITE_CONCURRENCY,
                                         raise_on_first_error=True):
        if not ok:  # pragma: no cover - raise_on_first_error raises first
            raise result


def queue_cache_update(p: Any, name: str, v: Mapping[str, Any], author_cap: int) -> None:
    """Queue on pipeline ``p`` the cache changes of one posts.v1 event: drop ``post:{id}``, update
    ``ap:{author}`` (trimmed to ``author_cap``), and add a deleted post to ``posts:deleted``.

    One script call, applied only if the event is not older than the newest applied to this post
    (``postver:{id}``, see the module docstring): a re-sent create after a delete changes nothing.
    """
    pid, author = v["post_id"], v["author_id"]
    if isinstance(p, ClusterPipeline):  # a script may touch one hash slot only: plain commands; the
        # fan-out worker (one per partition, so per post) already dropped older events (superseded)
        p.set(k_version(pid), version(name, v), ex=VERSION_TTL_S)
        p.delete(k_post(pid))
        if name == "PostDeleted":
            p.sadd(DELETED, str(pid))
            p.zrem(k_author(author), str(pid))
        else:
            p.zadd(k_author(author), {str(pid): pid})
            p.zremrangebyrank(k_author(author), 0, -(author_cap + 1))
        return
    p.register_script(CACHE_LUA)(keys=[k_version(pid), k_post(pid), k_author(author), DELETED],
           args=[version(name, v), int(name == "PostDeleted"), pid, author_cap, VERSION_TTL_S], client=p)


def ensure_author_caches(r: _redis.Redis, session: Session, authors: Iterable[str], cap: int) -> list[str]:
    """Refill ``ap:{a}`` from the author index for each author whose cache is missing; return them.

    Redis runs without persistence: after a loss, a post pushed into an absent ``ap:{a}`` would make
    a one-entry cache that the read-time celebrity merge takes as complete. Fan-out calls this
    after writing the batch's index rows and before queueing its cache updates; the index is read
    at LOCAL_QUORUM, newest ``cap`` rows, all authors concurrently. One EXISTS pipeline when warm.
    """
    authors = sorted(set(authors))
    if not authors:
        return []
    p = r.pipeline(transaction=False)
    read = queue_missing_author_caches(p, authors)
    return refill_author_caches(r, session, read(iter(p.execute())), cap)


def queue_missing_author_caches(p: Any, authors: Iterable[str]) -> Callable[[Iterator[Any]], list[str]]:
    """Queue :func:`ensure_author_caches`'s checks on pipeline ``p``; the returned reader takes the
    pipeline's results (an iterator, in queue order) and gives the authors whose cache is missing."""
    authors = sorted(set(authors))
    for a in authors:
        p.exists(k_author(a))
    return lambda results: [a for a in authors if not next(results)]


def refill_author_caches(r: _redis.Redis, session: Session, cold: list[str], cap: int) -> list[str]:
    """:func:`ensure_author_caches` for authors already found missing (``cold``); return them. Call
    it after the batch's author index rows are written (it reads them back)."""
    if not cold:
        return []
    futures = []
    for a in cold:
        bound = prepared(session, INDEX_FIRST).bind((a, cap))
        bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        futures.append(session.execute_async(bound))
    p = r.pipeline(transaction=False)
    for a, f in zip(cold, futures):
        ids = [row.post_id for row in f.result()]
        if ids:
            p.zadd(k_author(a), {str(i): i for i in ids})
    p.execute()
    return cold


def trim_author_cache(r: _redis.Redis, author: str, cap: int) -> None:
    """Keep only the newest ``cap`` ids in ``ap:{author}``."""
    r.zremrangebyrank(k_author(author), 0, -(cap + 1))


# -- content reads -----------------------------------------------------------------------------
def get_posts(session: Session, r: _redis.Redis, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Hydrate post ids into content dicts (Redis cache, then Cassandra); unknown ids are absent."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    out: dict[int, dict[str, Any]] = {}
    if not ids:
        return out
    for pid, raw in zip(ids, redis_store.mget(r, [k_post(i) for i in ids])):
        if raw:
            out[pid] = json.loads(raw)
    missing = [i for i in ids if i not in out]
    if missing:
        rows = session.execute(prepared(session, SELECT_POSTS_VERSIONED), (missing,))
        calls = []
        for row in rows:
            d = _content(row)
            row_version = d.pop("version") or 0
            out[d["post_id"]] = d
            # a fill never overwrites the cache with a row older than an event already applied
            # (both keys in the post's slot, so this also runs on Redis Cluster)
            calls.append(([k_version(d["post_id"]), k_post(d["post_id"])], [row_version, json.dumps(d), CACHE_TTL_S]))
        redis_store.eval_grouped(r, FILL_LUA, calls)
    return out


def stored_posts(session: Session, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Hydrate post ids from the ``posts`` table only (one IN query)."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    if not ids:
        return {}
    out = {}
    for row in session.execute(prepared(session, SELECT_POSTS), (ids,)):
        d = _content(row)
        out[d["post_id"]] = d
    return out


SELECT_OWNERS = "SELECT post_id, author_id, deleted FROM posts WHERE post_id IN ?"


def stored_owners(session: Session, ids: Iterable[int]) -> dict[int, tuple[str, bool]]:
    """``post_id -> (author_id, deleted)`` of the posts in the store (one IN query at LOCAL_QUORUM,
    like the post writes, so a post written by an earlier batch is seen)."""
    ids = list(dict.fromkeys(int(i) for i in ids))
    if not ids:
        return {}
    bound = prepared(session, SELECT_OWNERS).bind((ids,))
    bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    return {row.post_id: (row.author_id, bool(row.deleted)) for row in session.execute(bound)
            if row.author_id is not None}


def owner_statement(session: Session) -> Any:
    """The prepared ``(author_id, deleted)`` lookup of one post (bind ``(post_id,)``)."""
    return prepared(session, SELECT_OWNER)


def deleted_statement(session: Session) -> Any:
    """The prepared ``deleted`` flag lookup of one post (bind ``(post_id,)``; no row: unknown post)."""
    return prepared(session, SELECT_DELETED)


# -- author index reads ------------------------------------------------------------------------
def author_posts(session: Session, author_id: str, before: int | None, limit: int) -> list[tuple[int, str]]:
    """``author_id``'s newest posts below ``before`` as (post_id, visibility), newest first."""
    if before is None:
        rows = session.execute("SELECT post_id, visibility FROM posts_by_author WHERE author_id=%s "
                               "LIMIT %s", (author_id, limit))
    else:
        rows = session.execute("SELECT post_id, visibility FROM posts_by_author WHERE author_id=%s "
                               "AND post_id < %s LIMIT %s", (author_id, before, limit))
    return [(row.post_id, row.visibility) for row in rows]


def author_index_async(session: Session, author_id: str, before: int | None, limit: int) -> ResponseFuture:
    """Start reading ``author_id``'s newest index rows (``post_id``, ``visibility``) below ``before``."""
    if before is None:
        return session.execute_async(prepared(session, INDEX_FIRST), (author_id, limit))
    return session.execute_async(prepared(session, INDEX_BEFORE), (author_id, before, limit))


def recent_author_posts(session: Session, author: str, limit: int) -> list[tuple[int, str]]:
    """``author``'s newest posts (post_id, visibility) read at LOCAL_QUORUM (back-fill, purge)."""
    bound = prepared(session, INDEX_FIRST).bind((author, limit))
    bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    return [(row.post_id, row.visibility) for row in session.execute(bound)]
