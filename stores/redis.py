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


def is_cluster(r: object) -> bool:
    """Whether ``r`` is a Redis Cluster client (scripts then touch one hash slot only)."""
    return isinstance(r, RedisCluster | AsyncRedisCluster)


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


def queue_epoch(p: redis.client.Pipeline) -> Callable[[Iterator[Any]], bool]:
    """Queue :func:`ensure_epoch`'s creation on pipeline ``p``; the returned reader takes the
    pipeline's results (an iterator, in queue order) and says whether this call created the epoch
    (the Redis was new or lost its data)."""
    p.set(EPOCH, uuid.uuid4().hex, nx=True)
    return lambda results: bool(next(results))
