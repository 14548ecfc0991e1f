"""Token-bucket rate limits per user and per client IP, kept in Redis and checked atomically in Lua."""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from stores import redis as redis_store
from stores.requests import TOKEN_BUCKET_FN_LUA

# KEYS: bucket keys. ARGV: rate_per_s_1, burst_1, rate_per_s_2, burst_2, ...
# Returns 0 and takes one token from every bucket, or the ms until all of them have one (taking nothing).
TOKEN_BUCKET_LUA = TOKEN_BUCKET_FN_LUA + """
local rates, bursts = {}, {}
for i = 1, #KEYS do
  rates[i], bursts[i] = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
end
return take(KEYS, rates, bursts)
"""


@dataclass(frozen=True)
class Bucket:
    """One limit: a Redis key refilled at ``rate_per_s`` up to ``burst`` tokens."""

    key: str
    rate_per_s: float
    burst: int


class RateLimiter:
    """Check several buckets at once; one Redis round trip per request."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._script = redis.register_script(TOKEN_BUCKET_LUA)
        self._cluster = redis_store.is_cluster(redis)

    async def wait_ms(self, buckets: list[Bucket]) -> int:
        """Take a token from every bucket and return 0, or return how long to wait (taking none).

        On Redis Cluster the buckets (user, IP) lie in different slots, so each is taken by its own
        call, in order: a request refused by a later bucket has still spent a token of the earlier
        ones (stricter, never looser, than the single-Redis all-or-nothing take)."""
        if self._cluster and len(buckets) > 1:
            for b in buckets:
                wait = int(await self._script(keys=[b.key], args=[b.rate_per_s, b.burst]))
                if wait:
                    return wait
            return 0
        args: list[float | int] = []
        for b in buckets:
            args += [b.rate_per_s, b.burst]
        return int(await self._script(keys=[b.key for b in buckets], args=args))


def retry_after_s(wait_ms: int) -> int:
    """Whole seconds for a Retry-After header, never 0."""
    return max(1, math.ceil(wait_ms / 1000))
