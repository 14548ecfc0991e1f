"""Redis clients (sync for workers and tools, asyncio for the API) from settings."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from core.settings import Settings


def cluster_nodes(settings: Settings) -> list[tuple[str, int]]:
    """The Redis Cluster seed nodes of ``settings`` (empty: single-node Redis at ``redis_url``)."""
    raw = settings.redis_cluster_nodes or ""
    return [(h, int(p)) for h, _, p in (n.strip().rpartition(":") for n in raw.split(",") if n.strip())]


def client(settings: Settings) -> redis.Redis:
    """A synchronous Redis client with short timeouts: a ``RedisCluster`` when
    ``FEEDSTREAM_REDIS_CLUSTER_NODES`` is set (same command API; multi-key commands and scripts
    must then stay within one hash slot), else a single-node client on ``redis_url``."""
    nodes = cluster_nodes(settings)
    if nodes:
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in nodes],  # type: ignore[return-value]
                            socket_timeout=2, socket_connect_timeout=2)
    return redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def async_client(settings: Settings) -> aioredis.Redis:
    """An asyncio Redis client with short timeouts, for the API (a cluster client, as :func:`client`)."""
    nodes = cluster_nodes(settings)
    if nodes:
        return AsyncRedisCluster(startup_nodes=[AsyncClusterNode(h, p) for h, p in nodes],  # type: ignore[return-value]
                                 socket_timeout=2, socket_connect_timeout=2)
    return aioredis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)


def pubsub_url(settings: Settings) -> str:
    """Where to SUBSCRIBE to the timeline channels: ``redis_url``, or on Redis Cluster its first
    seed node (a classic PUBLISH on any node reaches the subscribers of every node)."""
    nodes = cluster_nodes(settings)
    return f"redis://{nodes[0][0]}:{nodes[0][1]}/0" if nodes else settings.redis_url


def is_cluster(r: object) -> bool:
    """Whether ``r`` is a Redis Cluster client (scripts then touch one hash slot only)."""
    return isinstance(r, RedisCluster | AsyncRedisCluster)


def tagged(prefix: str, ident: str) -> str:
    """A key hash-tagged on an id (``tl:{u}``, ``post:{id}``). On Redis Cluster all keys of one
    id share one hash slot: one user's timeline, its markers, negative set, freshness, graph sets,
    affinities, profile and read bucket; one post's body and applied version. So one script call
    can read a reader's part of a page. User ids never contain braces
    (``serving.payloads.USER_ID_PATTERN``), so the tag is the whole id."""
    return f"{prefix}{{{ident}}}"


def lua_key_functions(**key_fns: Callable[[str], str]) -> str:
    """Lua ``local function NAME(id)`` per key function, building keys exactly as the Python
    function does (prefix and suffix around the id, e.g. ``'tl:{' .. id .. '}'``): scripts that
    derive keys from ids (single Redis only) stay in step with the key layout."""
    out = []
    for name, fn in key_fns.items():
        pre, _, suf = fn("\x00").partition("\x00")
        tail = f" .. {suf!r}" if suf else ""
        out.append(f"local function {name}(x) return {pre!r} .. x{tail} end")
    return "\n".join(out) + "\n"


EPOCH = "redis:epoch"  # a fresh UUID each time the platform finds this Redis empty (no persistence)


def ensure_epoch(r: redis.Redis) -> tuple[str, bool]:
    """This Redis's epoch, and whether this call created it (the Redis was new or lost its data).

    Hot views that cannot be trusted after a loss carry their own per-key markers (``g:ok:{u}``,
    ``tlok:{r}``, missing ``ap:{a}`` and ``cnt:{post}``) and are reloaded from Cassandra lazily;
    the epoch tells operators (and the workers' logs) when that happened.
    """
    fresh = uuid.uuid4().hex
    if r.set(EPOCH, fresh, nx=True):
        return fresh, True
    cur = r.get(EPOCH)
    return (cur.decode() if isinstance(cur, bytes) else str(cur)), False


SEED_MARKER = "feedstream:seed:demo"  # set once the demo world is loaded (``feedstream seed``)
SEED_LOCK = "feedstream:seed:lock"  # held while a seed runs


class LoadingPipeline(redis.client.Pipeline):
    """A non-transactional pipeline that loads its scripts within its own round trip.

    redis-py's pipeline checks its scripts with a ``SCRIPT EXISTS`` round trip before every
    ``execute``; this one instead sends ``SCRIPT LOAD`` of each of them first, in the same round
    trip (a loaded script is found by its SHA1 and not compiled again), so the EVALSHAs after them
    never miss, even on a Redis that restarted since, and a scripted pipeline costs one round trip.
    """

    def execute(self, raise_on_error: bool = True) -> list:
        scripts = list(self.scripts)
        if not scripts:
            return super().execute(raise_on_error)
        self.scripts = set()
        self.command_stack[:0] = [(("SCRIPT LOAD", s.script), {}) for s in scripts]
        return super().execute(raise_on_error)[len(scripts):]


def pipeline(r: redis.Redis) -> redis.client.Pipeline:
    """A non-transactional pipeline on ``r``: a :class:`LoadingPipeline` on a single Redis, the
    cluster pipeline (one per node, plain commands) on Redis Cluster."""
    if is_cluster(r) or not isinstance(r, redis.Redis):
        return r.pipeline(transaction=False)
    return LoadingPipeline(r.connection_pool, r.response_callbacks, False, None)


def multi(r: Any) -> Any:
    """A MULTI/EXEC pipeline on a single Redis; on Redis Cluster (redis-py has no cluster
    transactions) a plain pipeline, whose commands to one node still run in order. Keep the keys
    of such a group in one hash slot (:func:`tagged`) so they stay on one node, and write the
    markers that readers trust last. Sync or asyncio client alike."""
    return r.pipeline(transaction=not is_cluster(r))


def mget(r: Any, keys: list[str]) -> Any:
    """MGET of ``keys``; on Redis Cluster split by slot and sent as one pipeline per node
    (``mget_nonatomic``: a multi-key MGET must stay in one slot). Sync or asyncio client (then
    awaitable)."""
    return r.mget_nonatomic(keys) if is_cluster(r) else r.mget(keys)


def eval_grouped(r: redis.Redis, script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """``script`` run once per ``(keys, args)`` call, every call's keys in one hash slot: one
    pipelined round trip on a single Redis; on Redis Cluster (whose pipelines take no scripts) one
    pipeline per node, each call sent to the node owning its first key. A slot that moved meanwhile
    (MOVED/ASK) sends that node's calls again one by one through the cluster client, which follows
    the redirect. Returns the replies in call order."""
    if not calls:
        return []
    if not is_cluster(r):
        p = pipeline(r)
        sc = r.register_script(script)
        for keys, args in calls:
            sc(keys=keys, args=args, client=p)
        return list(p.execute())
    by_node: dict[str, tuple[Any, list[int]]] = {}
    for i, (keys, _) in enumerate(calls):
        node = r.get_node_from_key(keys[0])  # type: ignore[attr-defined]
        by_node.setdefault(node.name, (node, []))[1].append(i)
    out: list[Any] = [None] * len(calls)
    for node, idx in by_node.values():
        conn = node.redis_connection
        p = LoadingPipeline(conn.connection_pool, conn.response_callbacks, False, None)
        sc = conn.register_script(script)
        for i in idx:
            sc(keys=calls[i][0], args=calls[i][1], client=p)
        try:
            replies = p.execute()
        except redis.exceptions.ResponseError as exc:
            if not str(exc).startswith(("MOVED", "ASK")):
                raise
            routed = r.register_script(script)
            replies = [routed(keys=calls[i][0], args=calls[i][1]) for i in idx]
        for i, rep in zip(idx, replies):
            out[i] = rep
    return out


def queue_epoch(p: redis.client.Pipeline) -> Callable[[Iterator[Any]], bool]:
    """Queue :func:`ensure_epoch`'s creation on pipeline ``p``; the returned reader takes the
    pipeline's results (an iterator, in queue order) and says whether this call created the epoch
    (the Redis was new or lost its data)."""
    p.set(EPOCH, uuid.uuid4().hex, nx=True)
    return lambda results: bool(next(results))
