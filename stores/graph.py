"""Social graph: follower/following sets, friendships, blocks and counts (Redis hot, Cassandra durable).

Redis key layout (sets of user ids; all rebuildable from the Cassandra tables below):

- ``g:fers:{u}``    followers of ``u`` (fan-out reads this; SCARD is the follower count)
- ``g:fing:{u}``    users ``u`` follows (read-time celebrity merge reads this)
- ``g:friends:{u}`` mutual friends of ``u`` (FRIENDS visibility); a relation of its own, not
  derived from follows: an unfollow keeps it, an unfriend or a block ends it
- ``g:blk:{u}``     users ``u`` blocked;  ``g:blkby:{u}`` users who blocked ``u``
- ``g:req:{u}``     pending friend requests sent to ``u`` (durable copy: ``friend_requests``)
- ``g:ok:{u}``      "1" once ``u``'s sets above (and ``neg:a:{u}``'s blocks) were loaded from Cassandra
                    into this Redis (:func:`ensure_loaded`). Redis runs without persistence: after a
                    restart or FLUSHALL the marker is gone, so the first worker or reader touching
                    ``u`` reloads ``u``'s sets from the durable tables before using them.

Cassandra tables: ``followers``, ``following``, ``friends``, ``blocks``, ``friend_requests``
(pending requests by recipient; one partition per user), ``user_counts`` holding absolute counts written
from the Redis set sizes (idempotent on replay), and ``edge_clocks``: per user pair, the version of
the last event applied to each of its edges (last writer wins by event time, see
:func:`topologies.graph.logic.edge_clock`), written with that version as write timestamp so the
highest always wins.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import redis as _redis
from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from stores import redis as redis_store
from stores.cassandra import prepared

DDL: list[str] = [
    ("CREATE TABLE IF NOT EXISTS {ks}.followers (user_id text, follower_id text, since bigint, "
    "PRIMARY KEY ((user_id), follower_id))"),
    ("CREATE TABLE IF NOT EXISTS {ks}.following (user_id text, followee_id text, since bigint, "
    "PRIMARY KEY ((user_id), followee_id))"),
    ("CREATE TABLE IF NOT EXISTS {ks}.friends (user_id text, friend_id text, since bigint, "
    "PRIMARY KEY ((user_id), friend_id))"),
    ("CREATE TABLE IF NOT EXISTS {ks}.blocks (user_id text, blocked_id text, since bigint, "
    "PRIMARY KEY ((user_id), blocked_id))"),
    ("CREATE TABLE IF NOT EXISTS {ks}.friend_requests (to_id text, from_id text, since bigint, "
    "PRIMARY KEY ((to_id), from_id))"),
    ("CREATE TABLE IF NOT EXISTS {ks}.user_counts (user_id text PRIMARY KEY, followers int, "
     "following int, friends int)"),
    # last applied event version per edge of a user pair (topologies.graph.logic.edge_clock)
    "CREATE TABLE IF NOT EXISTS {ks}.edge_clocks (pair text, edge text, version bigint, PRIMARY KEY ((pair), edge))",
]


def k_followers(u: str) -> str:
    """Redis key of ``u``'s follower set."""
    return redis_store.tagged("g:fers:", u)


def k_following(u: str) -> str:
    """Redis key of the set of users ``u`` follows."""
    return redis_store.tagged("g:fing:", u)


def k_friends(u: str) -> str:
    """Redis key of ``u``'s friend set."""
    return redis_store.tagged("g:friends:", u)


def k_blocks(u: str) -> str:
    """Redis key of the users ``u`` blocked."""
    return redis_store.tagged("g:blk:", u)


def k_blocked_by(u: str) -> str:
    """Redis key of the users who blocked ``u``."""
    return redis_store.tagged("g:blkby:", u)


def k_requests(u: str) -> str:
    """Redis key of pending friend requests to ``u``."""
    return redis_store.tagged("g:req:", u)


def k_loaded(u: str) -> str:
    """Redis key marking ``u``'s sets as loaded from Cassandra into this Redis."""
    return redis_store.tagged("g:ok:", u)


def _s(values: Iterable[bytes | str]) -> set[str]:
    return {v.decode() if isinstance(v, bytes) else v for v in values}


# -- reads (used by fan-out and by the read API) ------------------------------------------
def followers(r: _redis.Redis, u: str) -> set[str]:
    """Every follower of ``u``."""
    return _s(r.smembers(k_followers(u)))


def following(r: _redis.Redis, u: str) -> set[str]:
    """Every user ``u`` follows."""
    return _s(r.smembers(k_following(u)))


def friends(r: _redis.Redis, u: str) -> set[str]:
    """Every friend of ``u``."""
    return _s(r.smembers(k_friends(u)))


def follower_count(r: _redis.Redis, u: str) -> int:
    """How many users follow ``u`` (O(1))."""
    return int(r.scard(k_followers(u)))


def following_count(r: _redis.Redis, u: str) -> int:
    """How many users ``u`` follows (O(1))."""
    return int(r.scard(k_following(u)))


def counts(r: _redis.Redis, u: str) -> dict[str, int]:
    """Follower, following and friend counts of ``u``."""
    p = r.pipeline(transaction=False)
    read = queue_counts(p, [u])
    return read(iter(p.execute()))[u]


def queue_counts(p: _redis.client.Pipeline, users: Iterable[str]) -> Callable[[Iterator[Any]], dict[str, dict[str, int]]]:
    """Queue :func:`counts` of ``users`` on pipeline ``p``; the returned reader takes the pipeline's
    results (an iterator, in queue order) and gives user -> counts."""
    users = list(dict.fromkeys(users))
    for u in users:
        for key in (k_followers(u), k_following(u), k_friends(u)):
            p.scard(key)

    def read(results: Iterator[Any]) -> dict[str, dict[str, int]]:
        return {u: {"followers": int(next(results)), "following": int(next(results)), "friends": int(next(results))}
                for u in users}
    return read


def is_following(r: _redis.Redis, follower: str, followee: str) -> bool:
    """Whether ``follower`` follows ``followee``."""
    return bool(r.sismember(k_followers(followee), follower))


def is_friend(r: _redis.Redis, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are friends."""
    return bool(r.sismember(k_friends(a), b))


def is_blocked_either_way(r: _redis.Redis, a: str, b: str) -> bool:
    """Whether ``a`` blocked ``b`` or ``b`` blocked ``a``."""
    p = r.pipeline(transaction=False)
    p.sismember(k_blocks(a), b)
    p.sismember(k_blocks(b), a)
    return any(p.execute())


def is_celebrity(r: _redis.Redis, u: str, threshold: int) -> bool:
    """Whether ``u`` has more followers than ``threshold`` (and so is merged at read time)."""
    return follower_count(r, u) > threshold


def celebrity_followees(r: _redis.Redis, reader: str, threshold: int) -> list[str]:
    """The users ``reader`` follows whose posts are not fanned out (follower count above threshold)."""
    followees = sorted(following(r, reader))
    if not followees:
        return []
    p = r.pipeline(transaction=False)
    for f in followees:
        p.scard(k_followers(f))
    return [f for f, n in zip(followees, p.execute()) if int(n) > threshold]


def snapshot(r: _redis.Redis, authors: Iterable[str], friends_of: Iterable[str]
             ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Followers of every author and friends of ``friends_of`` in one pipeline."""
    authors, friends_of = sorted(set(authors)), sorted(set(friends_of))
    p = r.pipeline(transaction=False)
    for a in authors:
        p.smembers(k_followers(a))
    for a in friends_of:
        p.smembers(k_friends(a))
    out = p.execute()
    dec = lambda xs: {x.decode() if isinstance(x, bytes) else x for x in xs}
    fol = {a: dec(xs) for a, xs in zip(authors, out[:len(authors)])}
    fr = {a: dec(xs) for a, xs in zip(friends_of, out[len(authors):])}
    return fol, fr


# KEYS: marker, g:fers, g:fing, g:friends, g:blk, g:req, neg:a; ARGV: one count per set key, then
# the members of each set in that order. Loads only if the marker is absent (atomic with the check):
# a writer that mutates a set ensures it loaded first, so a reader's older Cassandra read that lands
# after the writer's first touch changes nothing.
LOAD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local pos = #KEYS
for k = 2, #KEYS do
  local n = tonumber(ARGV[k - 1])
  for j = 1, n do
    redis.call('SADD', KEYS[k], ARGV[pos])
    pos = pos + 1
  end
end
redis.call('SET', KEYS[1], '1')
return 1
"""
LOAD_QUERIES = (
    ("followers", "SELECT follower_id AS m FROM followers WHERE user_id=?"),
    ("following", "SELECT followee_id AS m FROM following WHERE user_id=?"),
    ("friends", "SELECT friend_id AS m FROM friends WHERE user_id=?"),
    ("blocks", "SELECT blocked_id AS m FROM blocks WHERE user_id=?"),
    ("requests", "SELECT from_id AS m FROM friend_requests WHERE to_id=?"),
)


def queue_unloaded(p: _redis.client.Pipeline, users: Iterable[str]) -> Callable[[Iterator[Any]], list[str]]:
    """Queue :func:`unloaded`'s checks on pipeline ``p``; the returned reader takes the pipeline's
    results (an iterator, in queue order) and gives the users not loaded, sorted."""
    users = sorted(set(users))
    for u in users:
        p.exists(k_loaded(u))
    return lambda results: [u for u in users if not next(results)]


def unloaded(r: _redis.Redis, users: Iterable[str]) -> list[str]:
    """The users among ``users`` whose sets were not loaded into this Redis (one pipeline)."""
    users = sorted(set(users))
    if not users:
        return []
    p = r.pipeline(transaction=False)
    read = queue_unloaded(p, users)
    return read(iter(p.execute()))


def _durable_sets(session: Session, users: list[str]) -> list[tuple[list[str], list[list[str]]]]:
    """Per user, the keys to load (marker first) and their members from the durable tables (read
    concurrently, all pages)."""
    futures = [[session.execute_async(prepared(session, q), (u,)) for _, q in LOAD_QUERIES] for u in users]
    out = []
    for u, futs in zip(users, futures):
        fol, fing, fr, blk, req = ([row.m for row in f.result()] for f in futs)
        keys = [k_loaded(u), k_followers(u), k_following(u), k_friends(u), k_blocks(u), k_requests(u),
                redis_store.tagged("neg:a:", u)]  # stores.timelines.k_negative (which imports this module)
        out.append((keys, [fol, fing, fr, blk, req, blk]))
    return out


def ensure_loaded(r: _redis.Redis, session: Session, users: Iterable[str]) -> list[str]:
    """Load the graph sets of every user in ``users`` not yet loaded into this Redis; return them.

    One EXISTS pipeline when everything is warm. For a cold user, every durable edge table is read
    concurrently (all pages) and added to the Redis sets by one conditional script call per user;
    ``neg:a:{u}`` gets the users ``u`` blocked (unfollowed authors need no entry: a rebuilt timeline
    holds followees' posts only). Idempotent: loading twice, or over sets written since, unions.
    """
    return load(r, session, unloaded(r, users))


def load(r: _redis.Redis, session: Session, cold: list[str]) -> list[str]:
    """:func:`ensure_loaded` for users already found not loaded (``cold``, e.g. by
    :func:`queue_unloaded` in a caller's pipeline); return them. A user's keys share one hash slot
    (:func:`stores.redis.tagged`), so the conditional load script runs on Redis Cluster too: one
    round trip per node (:func:`stores.redis.eval_grouped`)."""
    if not cold:
        return []
    calls = [(keys, [len(x) for x in sets] + [m for x in sets for m in x])
             for keys, sets in _durable_sets(session, cold)]
    redis_store.eval_grouped(r, LOAD_LUA, calls)
    return cold


SELECT_CLOCKS = "SELECT edge, version FROM edge_clocks WHERE pair=?"
STAMP_CLOCK = "INSERT INTO edge_clocks (pair, edge, version) VALUES (?, ?, ?) USING TIMESTAMP ?"


def pair_key(a: str, b: str) -> str:
    """The ``edge_clocks`` partition of the user pair ``{a, b}``."""
    return "|".join(sorted((a, b)))


def edge_clocks(session: Session, a: str, b: str) -> dict[str, int]:
    """The last applied version of every edge between ``a`` and ``b`` (one query, LOCAL_QUORUM)."""
    bound = prepared(session, SELECT_CLOCKS).bind((pair_key(a, b),))
    bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    return {row.edge: row.version for row in session.execute(bound)}


def stamp_edges(session: Session, a: str, b: str, edges: Iterable[str], version: int) -> None:
    """Raise the clocks of ``edges`` between ``a`` and ``b`` to ``version`` (never lowers one)."""
    stmt = prepared(session, STAMP_CLOCK)
    futures = []
    for e in dict.fromkeys(edges):
        bound = stmt.bind((pair_key(a, b), e, version, version))
        bound.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        futures.append(session.execute_async(bound))
    for f in futures:
        f.result()


SELECT_PENDING = "SELECT from_id FROM friend_requests WHERE to_id=? AND from_id=?"


def pending_request_statement(session: Session) -> object:
    """The prepared lookup of one pending request (bind ``(to_id, from_id)``)."""
    return prepared(session, SELECT_PENDING)


def has_pending_request(r: _redis.Redis, session: Session | None, from_id: str, to_id: str) -> bool:
    """Whether ``from_id``'s friend request to ``to_id`` is pending (Redis; Cassandra on a miss)."""
    if r.sismember(k_requests(to_id), from_id):
        return True
    if session is None:
        return False
    return session.execute(pending_request_statement(session), (to_id, from_id)).one() is not None


def list_edges(session: Session, table: str, u: str, limit: int = 1000) -> list[str]:
    """Durable list of ``u``'s followers/following/friends/blocks from Cassandra (up to ``limit``)."""
    column = {"followers": "follower_id", "following": "followee_id", "friends": "friend_id",
              "blocks": "blocked_id"}[table]
    rows = session.execute(f"SELECT {column} FROM {table} WHERE user_id=%s LIMIT %s", (u, limit))
    return [getattr(row, column) for row in rows]


# -- writes (the graph topology is the single writer) -------------------------------------
class GraphWriter:
    """Applies edge changes to Redis and Cassandra; every method is idempotent.

    Every method first loads its two users' sets from Cassandra if this Redis lost them
    (:func:`ensure_loaded`), so a write never lands in a partial set and ``user_counts`` (written
    from the set sizes) is never overwritten with the size of a half-empty set after a Redis loss.
    """

    def __init__(self, r: _redis.Redis, session: Session) -> None:
        self.r = r
        self.s = session
        self._ins = {t: session.prepare(f"INSERT INTO {t} (user_id, {c}, since) VALUES (?, ?, ?)")
                     for t, c in (("followers", "follower_id"), ("following", "followee_id"),
                                  ("friends", "friend_id"), ("blocks", "blocked_id"))}
        self._del = {t: session.prepare(f"DELETE FROM {t} WHERE user_id=? AND {c}=?")
                     for t, c in (("followers", "follower_id"), ("following", "followee_id"),
                                  ("friends", "friend_id"), ("blocks", "blocked_id"))}
        self._req_ins = session.prepare("INSERT INTO friend_requests (to_id, from_id, since) VALUES (?, ?, ?)")
        self._req_del = session.prepare("DELETE FROM friend_requests WHERE to_id=? AND from_id=?")
        self._counts = session.prepare(
            "INSERT INTO user_counts (user_id, followers, following, friends) VALUES (?, ?, ?, ?)")

    def _cql(self, stmts: list[tuple[object, tuple]]) -> None:
        futures = [self.s.execute_async(stmt, args) for stmt, args in stmts]
        for f in futures:
            f.result()

    def _save_counts(self, users: Iterable[str]) -> None:
        self._cql([(self._counts, (u, *counts(self.r, u).values())) for u in set(users)])

    def follow(self, follower: str, followee: str, at_ms: int | None = None) -> None:
        """Add the edge ``follower -> followee``."""
        ensure_loaded(self.r, self.s, (follower, followee))
        at = at_ms or int(time.time() * 1000)
        p = redis_store.multi(self.r)
        p.sadd(k_followers(followee), follower)
        p.sadd(k_following(follower), followee)
        p.execute()
        self._cql([(self._ins["followers"], (followee, follower, at)),
                   (self._ins["following"], (follower, followee, at))])
        self._save_counts((follower, followee))

    def unfollow(self, follower: str, followee: str) -> None:
        """Remove the edge ``follower -> followee`` only: a friendship stays (see :meth:`unfriend`)."""
        ensure_loaded(self.r, self.s, (follower, followee))
        p = redis_store.multi(self.r)
        p.srem(k_followers(followee), follower)
        p.srem(k_following(follower), followee)
        p.execute()
        self._cql([(self._del["followers"], (followee, follower)),
                   (self._del["following"], (follower, followee))])
        self._save_counts((follower, followee))

    def _end_friendship(self, a: str, b: str) -> None:
        p = redis_store.multi(self.r)
        p.srem(k_friends(a), b)
        p.srem(k_friends(b), a)
        p.execute()
        self._cql([(self._del["friends"], (a, b)), (self._del["friends"], (b, a))])

    def unfriend(self, a: str, b: str) -> None:
        """End the friendship of ``a`` and ``b`` and the follows both ways (which accepting created)."""
        ensure_loaded(self.r, self.s, (a, b))
        self._end_friendship(a, b)
        self.unfollow(a, b)
        self.unfollow(b, a)

    def request_sent(self, from_id: str, to_id: str, at_ms: int | None = None) -> None:
        """Record a pending friend request."""
        ensure_loaded(self.r, self.s, (from_id, to_id))
        self.r.sadd(k_requests(to_id), from_id)
        self._cql([(self._req_ins, (to_id, from_id, at_ms or int(time.time() * 1000)))])

    def request_cleared(self, from_id: str, to_id: str) -> None:
        """Clear a pending friend request (declined or accepted)."""
        ensure_loaded(self.r, self.s, (from_id, to_id))
        self.r.srem(k_requests(to_id), from_id)
        self._cql([(self._req_del, (to_id, from_id))])

    def befriend(self, a: str, b: str, at_ms: int | None = None) -> None:
        """Make ``a`` and ``b`` friends: a mutual follow plus the friend sets."""
        ensure_loaded(self.r, self.s, (a, b))
        self.request_cleared(a, b)
        self.request_cleared(b, a)
        self.follow(a, b, at_ms)
        self.follow(b, a, at_ms)
        at = at_ms or int(time.time() * 1000)
        p = redis_store.multi(self.r)
        p.sadd(k_friends(a), b)
        p.sadd(k_friends(b), a)
        p.execute()
        self._cql([(self._ins["friends"], (a, b, at)), (self._ins["friends"], (b, a, at))])
        self._save_counts((a, b))

    def block(self, blocker: str, blocked: str, at_ms: int | None = None) -> None:
        """``blocker`` blocks ``blocked``: record it and drop follows and friendship both ways."""
        ensure_loaded(self.r, self.s, (blocker, blocked))
        at = at_ms or int(time.time() * 1000)
        p = redis_store.multi(self.r)
        p.sadd(k_blocks(blocker), blocked)
        p.sadd(k_blocked_by(blocked), blocker)
        p.srem(k_requests(blocker), blocked)
        p.srem(k_requests(blocked), blocker)
        p.execute()
        self._cql([(self._ins["blocks"], (blocker, blocked, at)), (self._req_del, (blocker, blocked)),
                   (self._req_del, (blocked, blocker))])
        self._end_friendship(blocker, blocked)
        self.unfollow(blocker, blocked)
        self.unfollow(blocked, blocker)

    def unblock(self, blocker: str, blocked: str) -> None:
        """Lift a block (follows are not restored)."""
        ensure_loaded(self.r, self.s, (blocker, blocked))
        p = redis_store.multi(self.r)
        p.srem(k_blocks(blocker), blocked)
        p.srem(k_blocked_by(blocked), blocker)
        p.execute()
        self._cql([(self._del["blocks"], (blocker, blocked))])


# -- a batch of graph events (topologies.graph.app.process_graph_batch) ------------------------------
#: kind of set (topologies.graph.logic.KINDS, plus ``blkby``) -> its Redis key
KIND_KEYS: dict[str, Callable[[str], str]] = {"fers": k_followers, "fing": k_following, "friends": k_friends,
                                              "blk": k_blocks, "req": k_requests, "blkby": k_blocked_by}
# ARGV: n, then n pairs (a, b), then users. Returns the memberships of every pair in KINDS order,
# both ways ("0"/"1" each: kind's set of a has b, kind's set of b has a), the users' follower
# counts joined by ",", and the users whose sets are not loaded (no g:ok marker). One reply for
# the whole batch (reading each as its own reply costs more).
STATE_LUA = redis_store.lua_key_functions(OK=k_loaded, FERS=k_followers, FING=k_following, FRIENDS=k_friends,
                                          BLK=k_blocks, REQ=k_requests) + """
local n = tonumber(ARGV[1])
local cold = {}
for j = 2 + 2 * n, #ARGV do
  if redis.call('EXISTS', OK(ARGV[j])) == 0 then cold[#cold + 1] = ARGV[j] end
end
local kinds = {FERS, FING, FRIENDS, BLK, REQ}
local bits = {}
for i = 0, n - 1 do
  local a, b = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  for _, k in ipairs(kinds) do
    bits[#bits + 1] = redis.call('SISMEMBER', k(a), b)
    bits[#bits + 1] = redis.call('SISMEMBER', k(b), a)
  end
end
local counts = {}
for j = 2 + 2 * n, #ARGV do counts[#counts + 1] = redis.call('SCARD', FERS(ARGV[j])) end
return {table.concat(bits), table.concat(counts, ','), cold}
"""
KINDS = ("fers", "fing", "friends", "blk", "req")


def queue_state(r: _redis.Redis, p: Any, pairs: list[tuple[str, str]], users: list[str]
                ) -> Callable[[Iterator[Any]], tuple[list[str], dict[tuple[str, str, str], bool], dict[str, int]]]:
    """Queue on pipeline ``p`` the reads of a batch's graph state: which ``users`` are not loaded
    (:func:`unloaded`), every :data:`KINDS` membership of each pair, both ways, and each user's
    follower count; the returned reader takes the pipeline's results (an iterator) and gives
    ``(unloaded users, {(kind, owner, member): bool}, {user: follower count})``. One script call
    on a single Redis; plain commands on Redis Cluster (keys in many slots)."""
    cluster = redis_store.is_cluster(r)
    if cluster:
        cold = queue_unloaded(p, users)
        for a, b in pairs:
            for k in KINDS:
                p.sismember(KIND_KEYS[k](a), b)
                p.sismember(KIND_KEYS[k](b), a)
        for u in users:
            p.scard(k_followers(u))
    else:
        r.register_script(STATE_LUA)(args=[len(pairs), *(x for ab in pairs for x in ab), *users], client=p)

    def read(results: Iterator[Any]) -> tuple[list[str], dict[tuple[str, str, str], bool], dict[str, int]]:
        if cluster:
            unloaded_users = cold(results)
            bits = [bool(next(results)) for _ in range(len(pairs) * 2 * len(KINDS))]
            counts = [int(next(results)) for _ in users]
        else:
            raw, cs, missing = next(results)
            raw = raw.decode() if isinstance(raw, bytes) else raw
            cs = cs.decode() if isinstance(cs, bytes) else cs
            unloaded_users = sorted(_s(missing))
            bits = [c == "1" for c in raw]
            counts = [int(c) for c in cs.split(",")] if users else []
        sets: dict[tuple[str, str, str], bool] = {}
        i = 0
        for a, b in pairs:
            for k in KINDS:
                sets[(k, a, b)], sets[(k, b, a)] = bits[i], bits[i + 1]
                i += 2
        return unloaded_users, sets, dict(zip(users, counts))
    return read


# ARGV: n, then n triples (op, key, member: op "1" adds, "0" removes), then users. Applies the
# batch's final memberships atomically (as the writer's MULTI did) and returns each user's set sizes
# after them, "followers,following,friends" joined by ";": one reply, not one per command.
APPLY_LUA = redis_store.lua_key_functions(FERS=k_followers, FING=k_following, FRIENDS=k_friends) + """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local j = 2 + 3 * i
  if ARGV[j] == '1' then redis.call('SADD', ARGV[j + 1], ARGV[j + 2]) else redis.call('SREM', ARGV[j + 1], ARGV[j + 2]) end
end
local out = {}
for j = 2 + 3 * n, #ARGV do
  local u = ARGV[j]
  out[#out + 1] = redis.call('SCARD', FERS(u)) .. ',' .. redis.call('SCARD', FING(u)) .. ','
    .. redis.call('SCARD', FRIENDS(u))
end
return table.concat(out, ';')
"""


def apply_sets(r: _redis.Redis, ops: list[tuple[bool, str, str]], users: list[str]
               ) -> dict[str, tuple[int, int, int]]:
    """Apply ``ops`` (add?, set key, member) and return ``users``' (followers, following, friends)
    counts read after them: one atomic script call on a single Redis; on Redis Cluster (keys in
    many slots) a plain pipeline."""
    if redis_store.is_cluster(r):
        p = r.pipeline(transaction=False)
        for add, key, member in ops:
            (p.sadd if add else p.srem)(key, member)
        for u in users:
            p.scard(k_followers(u))
            p.scard(k_following(u))
            p.scard(k_friends(u))
        done = p.execute()
        sizes = [int(x) for x in done[len(done) - 3 * len(users):]]
        return {u: (sizes[3 * i], sizes[3 * i + 1], sizes[3 * i + 2]) for i, u in enumerate(users)}
    p = redis_store.pipeline(r)
    r.register_script(APPLY_LUA)(args=[len(ops), *(x for add, k, m in ops for x in ("1" if add else "0", k, m)),
                                       *users], client=p)
    raw = p.execute()[0]
    raw = raw.decode() if isinstance(raw, bytes) else raw
    out: dict[str, tuple[int, int, int]] = {}
    for u, c in zip(users, raw.split(";") if users else []):
        a, b, f = c.split(",")
        out[u] = (int(a), int(b), int(f))
    return out


#: the durable edge tables: ``table -> (partition column, clustering column)``
EDGE_TABLES = {"followers": ("user_id", "follower_id"), "following": ("user_id", "followee_id"),
               "friends": ("user_id", "friend_id"), "blocks": ("user_id", "blocked_id"),
               "friend_requests": ("to_id", "from_id")}
READ_CHUNK = 100  # partitions per IN read
WRITE_CONCURRENCY = 64  # statements (or per-partition batches) in flight
SELECT_CLOCKS_IN = "SELECT pair, edge, version FROM edge_clocks WHERE pair IN ?"


def _concurrent(session: Session, statements: list[Any]) -> list[Any]:
    from cassandra.concurrent import execute_concurrent
    if not statements:
        return []
    out = []
    for ok, result in execute_concurrent(session, [(s, None) for s in statements],
                                         concurrency=WRITE_CONCURRENCY, raise_on_first_error=True):
        if not ok:  # pragma: no cover - raise_on_first_error raises first
            raise result
        out.append(result)
    return out


def _in_reads(session: Session, cql: str, keys: list[Any], *extra: Any) -> list[Any]:
    """Bound ``cql`` (``... IN ? ...``) over ``keys`` in chunks of :data:`READ_CHUNK`, LOCAL_QUORUM."""
    stmt = prepared(session, cql)
    bound = []
    for i in range(0, len(keys), READ_CHUNK):
        b = stmt.bind((keys[i:i + READ_CHUNK], *extra))
        b.consistency_level = ConsistencyLevel.LOCAL_QUORUM
        bound.append(b)
    return bound


def read_batch(session: Session, pairs: Iterable[str], requests: Iterable[tuple[str, str]]
               ) -> tuple[dict[str, dict[str, int]], set[tuple[str, str]]]:
    """One concurrent Cassandra round of a batch's reads: the edge clocks of ``pairs`` (pair keys,
    LOCAL_QUORUM, as :func:`edge_clocks`) and which ``requests`` (``(from, to)``, those Redis does
    not hold) are pending in Cassandra; returns ``({pair: {edge: version}}, {(from, to)})``."""
    pairs, requests = sorted(set(pairs)), sorted(set(requests))
    clock_stmts = _in_reads(session, SELECT_CLOCKS_IN, pairs)
    req = pending_request_statement(session)
    results = _concurrent(session, clock_stmts + [req.bind((to, f)) for f, to in requests])
    clocks: dict[str, dict[str, int]] = {p: {} for p in pairs}
    for rows in results[:len(clock_stmts)]:
        for row in rows:
            clocks[row.pair][row.edge] = row.version
    pending = {fr for fr, rows in zip(requests, results[len(clock_stmts):]) if rows.one() is not None}
    return clocks, pending


SELECT_INDEX_IN = ("SELECT author_id, post_id, visibility FROM posts_by_author WHERE author_id IN ? "
                   "PER PARTITION LIMIT ?")


def index_statements(session: Session, authors: list[str], limit: int) -> list[Any]:
    """Bound reads of ``authors``' newest ``limit`` posts (author index), LOCAL_QUORUM."""
    return _in_reads(session, SELECT_INDEX_IN, sorted(set(authors)), limit)


def write_batch(session: Session, rows: dict[tuple[str, str, str], int | None],
                counts: dict[str, tuple[int, int, int]], reads: list[Any] = ()) -> list[Any]:
    """Write a batch's final edge rows (``(table, partition, clustering) -> since``, None deletes)
    and ``user_counts`` (user -> followers, following, friends), grouped by partition and packed by
    replicas (:func:`pack_by_replica`), at most :data:`WRITE_CONCURRENCY` in flight, with
    ``reads`` (bound statements) in the same round; returns the reads' results."""
    statements = []
    for (table, part, clust), since in sorted(rows.items()):  # a partition's rows together
        pcol, ccol = EDGE_TABLES[table]
        if since is None:
            stmt = prepared(session, f"DELETE FROM {table} WHERE {pcol}=? AND {ccol}=?").bind((part, clust))
        else:
            stmt = prepared(session, f"INSERT INTO {table} ({pcol}, {ccol}, since) VALUES (?, ?, ?)"
                            ).bind((part, clust, since))
        statements.append(stmt)
    ins = prepared(session, "INSERT INTO user_counts (user_id, followers, following, friends) VALUES (?, ?, ?, ?)")
    statements += [ins.bind((u, *c)) for u, c in counts.items()]
    reads = list(reads)
    return _concurrent(session, reads + pack_by_replica(session, statements))[:len(reads)]


def stamp_batch(session: Session, stamps: dict[tuple[str, str], int]) -> None:
    """Raise the batch's edge clocks (``(pair key, edge) -> version``, written with the version as
    timestamp: never lowers one), packed by replicas (:func:`pack_by_replica`), LOCAL_QUORUM."""
    stmt = prepared(session, STAMP_CLOCK)
    _concurrent(session, pack_by_replica(session, [stmt.bind((pair, edge, version, version))
                                                   for (pair, edge), version in sorted(stamps.items())],
                                         ConsistencyLevel.LOCAL_QUORUM))


PACK = 64  # statements per unlogged batch (rows of ~100 bytes: well under the 50 KB batch limit)


def pack_by_replica(session: Session, statements: list[Any], consistency: Any = None) -> list[Any]:
    """``statements`` (bound, at most one per row) as unlogged batches of up to :data:`PACK`, each
    holding statements whose partitions have the same replicas, in the order given (callers give
    a partition's rows one after the other, so a partition's rows share a batch).

    Each request costs the Python driver far more CPU than its rows (a request and a response,
    futures, a timer, a query plan): per-partition requests made it ~2/3 of the graph worker's CPU.
    A batch whose partitions share their replicas is sent token-aware to one of them and written
    there without a coordinator fan-out, the way a per-partition batch is; unlogged, so no more
    atomic than separate statements (every row is written once per call, so the batch's single
    write timestamp orders nothing that separate statements would have).
    """
    meta = session.cluster.metadata
    ks = session.keyspace
    by_replicas: dict[tuple[str, ...], list[Any]] = {}
    if len(meta.all_hosts()) <= 1:  # one node holds every partition: no lookup per statement
        by_replicas[()] = statements
    for b in statements if not by_replicas else ():
        hosts = meta.get_replicas(ks, b.routing_key) if b.routing_key is not None else []
        by_replicas.setdefault(tuple(sorted(str(h.endpoint) for h in hosts)), []).append(b)
    out = []
    for group in by_replicas.values():
        for i in range(0, len(group), PACK):
            chunk = group[i:i + PACK]
            if len(chunk) == 1:
                stmt = chunk[0]
            else:
                stmt = BatchStatement(batch_type=BatchType.UNLOGGED)
                for b in chunk:
                    stmt.add(b)
            if consistency is not None:
                stmt.consistency_level = consistency
            out.append(stmt)
    return out
