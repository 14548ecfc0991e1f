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


# A write's first call (serving/writes.py, serving/gate.py): the rate limit, the caller's registration, the
# Idempotency-Key claim and the route's ownership reads in one script, so the common path of a write is
# one round trip before its produce. Each piece keeps the keys and semantics of its separate form:
#
# KEYS: nb buckets; ne registration pairs (``registered:{u}``, ``user:{u}``: the API's mark, the profile
#       cache); if claiming, the claim key and ``idem:since``; then keys to GET (ownership).
# ARGV: nb, ne, gate ('1': the first pair is the caller, claim only if it is known), claim ('1'/'0'),
#       claim value, claim TTL ms, then rate and burst per bucket.
# Returns {wait} if a bucket is empty (nothing else done), else {0, known, claim, since, values...}:
# ``known`` one '1'/'0' per pair; ``claim`` 1 if the claim was created, the held claim if the key was
# taken, 0 if no claim was asked or the caller is not known here (the caller then checks the profile
# view and claims separately); ``since`` the ``idem:since`` value.
WRITE_GATE_LUA = TOKEN_BUCKET_FN_LUA + """
local nb, ne = tonumber(ARGV[1]), tonumber(ARGV[2])
if nb > 0 then
  local keys, rates, bursts = {}, {}, {}
  for i = 1, nb do
    keys[i], rates[i], bursts[i] = KEYS[i], tonumber(ARGV[5 + 2 * i]), tonumber(ARGV[6 + 2 * i])
  end
  local wait = take(keys, rates, bursts)
  if wait > 0 then return {wait} end
end
local k = nb + 1
local known = ''
for i = 1, ne do
  if redis.call('EXISTS', KEYS[k], KEYS[k + 1]) > 0 then known = known .. '1' else known = known .. '0' end
  k = k + 2
end
local claim, since = 0, false
if ARGV[4] == '1' then
  if ARGV[3] ~= '1' or string.sub(known, 1, 1) == '1' then
    if redis.call('SET', KEYS[k], ARGV[5], 'NX', 'PX', ARGV[6]) then
      claim = 1
    else
      claim = redis.call('GET', KEYS[k])
    end
    since = redis.call('GET', KEYS[k + 1])
  end
  k = k + 2
end
local out = {0, known, claim, since}
for i = k, #KEYS do out[#out + 1] = redis.call('GET', KEYS[i]) end
return out
"""

# A write's last call, after Kafka confirmed: the Idempotency-Key's stored response, the writer's newest
# positions (``stores.progress.RAISE_LUA``'s rule on ``pos:user:{u}``) and the route's records (SETs,
# e.g. a new post's owner) in one script.
# KEYS: [claim key] if ARGV[1] == '1'; [positions key] if ARGV[3] ~= '0'; then the keys to SET.
# ARGV: '1'/'0' (store a response), the response value; the number of position fields (0: none), the
#       positions' TTL ms; the response TTL ms; then field, offset pairs; then one value per SET key.
WRITE_DONE_LUA = """
local k, a = 1, 6
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[5])
  k = 2
end
local n = tonumber(ARGV[3])
if n > 0 then
  local pk = KEYS[k]
  for i = 1, n do
    local f, off = ARGV[a], ARGV[a + 1]
    local cur = redis.call('HGET', pk, f)
    if not cur or tonumber(cur) < tonumber(off) then redis.call('HSET', pk, f, off) end
    a = a + 2
  end
  if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', pk, ARGV[4]) end
  k = k + 1
end
for i = k, #KEYS do
  redis.call('SET', KEYS[i], ARGV[a])
  a = a + 1
end
return 1
"""
