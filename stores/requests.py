"""Redis keys of the API's request bookkeeping: Idempotency-Key claims and rate-limit buckets.

Not a view: these keys are written by the write API itself (see ``serving/idempotency.py`` and
``serving/ratelimit.py``), but their names live here with every other key family.

- ``idem:{user}:{key}``  HASH claim and stored response of one Idempotency-Key (per user)
- ``rl:user:{user}``     token bucket of one user's writes
- ``rl:ip:{ip}``         token bucket of one client IP's writes
- ``rl:read:user:{user}`` token bucket of one user's reads
- ``rl:read:ip:{ip}``    token bucket of one client IP's reads
- ``idem:since``         epoch ms since which this Redis holds every claim made (absent: lost or new)

Cassandra ``requests`` (``DDL``): the durable copy of a claim that must survive a Redis loss (a
completed response, or a write whose delivery is in doubt), per (user, Idempotency-Key), written
with a TTL of the idempotency window. Read only when a claim is missing from a Redis younger than
that window (``idem:since``).
"""

from __future__ import annotations

from typing import Any

from cassandra.cluster import Session

from stores import redis as redis_store
from stores.cassandra import prepared

K_CLAIMS_SINCE = "idem:since"

DDL: list[str] = [
    ("CREATE TABLE IF NOT EXISTS {ks}.requests (user_id text, idem_key text, claim text, "
     "PRIMARY KEY ((user_id, idem_key)))"),
]
PUT = "INSERT INTO requests (user_id, idem_key, claim) VALUES (?, ?, ?) USING TTL ?"
GET = "SELECT claim FROM requests WHERE user_id = ? AND idem_key = ?"


def put_statement(session: Session) -> Any:
    """Prepared write of one durable claim (bind ``(user, key, claim JSON, ttl_s)``)."""
    return prepared(session, PUT)


def get_statement(session: Session) -> Any:
    """Prepared read of one durable claim (bind ``(user, key)``)."""
    return prepared(session, GET)


def k_idempotency(user: str, idem_key: str) -> str:
    """Redis key of ``user``'s claim on ``idem_key`` (two users may use the same key)."""
    return f"idem:{user}:{idem_key}"


def k_rate_user(user: str) -> str:
    """Redis key of ``user``'s write token bucket."""
    return f"rl:user:{user}"


def k_rate_ip(ip: str) -> str:
    """Redis key of a client IP's write token bucket."""
    return f"rl:ip:{ip}"


def k_read_rate_user(user: str) -> str:
    """Redis key of ``user``'s read token bucket."""
    return redis_store.tagged("rl:read:user:", user)


def k_read_rate_ip(ip: str) -> str:
    """Redis key of a client IP's read token bucket."""
    return f"rl:read:ip:{ip}"


# The token bucket, in one place: a Lua function that server-side scripts embed (the write API's
# limiter, serving/ratelimit.py, and the feed page script, stores/feedpage.py). ``take(keys, rates,
# bursts)`` takes one token from every bucket and returns 0, or returns the ms until all of them have
# one and takes nothing. A bucket's hash holds ``tokens`` (float) and ``ts`` (ms of Redis' clock); it
# refills at ``rate`` per second up to ``burst`` and expires once it would be full again.
TOKEN_BUCKET_FN_LUA = """
local function take(keys, rates, bursts)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local wait, left = 0, {}
  for i, key in ipairs(keys) do
    local rate, burst = rates[i], bursts[i]
    local h = redis.call('HMGET', key, 'tokens', 'ts')
    local tokens = tonumber(h[1]) or burst
    local ts = tonumber(h[2]) or now
    tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
    if tokens < 1 then wait = math.max(wait, math.ceil((1 - tokens) * 1000 / rate)) end
    left[i] = tokens
  end
  if wait > 0 then return wait end
  for i, key in ipairs(keys) do
    redis.call('HSET', key, 'tokens', tostring(left[i] - 1), 'ts', now)
    redis.call('PEXPIRE', key, math.ceil(bursts[i] * 1000 / rates[i]) + 1000)
  end
  return 0
end
"""
