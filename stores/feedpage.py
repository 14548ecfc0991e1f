"""A home-feed page in one Redis round trip: one server-side script reads everything a page needs.

:data:`FEED_PAGE_LUA` checks the reader (cached profile, timeline needing no rebuild), marks them
seen, merges ``tl:{reader}`` with the followed celebrities' author caches ``ap:{author}``, filters
candidates in O(page) (deleted set and flag, the moderation-hidden set for others' posts, the
reader's negative set, FOLLOWERS/FRIENDS
visibility on the Redis graph sets) until ``limit + 1`` are visible, and returns the page's
pre-serialized bodies (``post:{id}`` JSON), hot counts, author profiles, affinities and freshness.
The reader's read rate-limit buckets, when given, are taken first in the same call (the token bucket
of :data:`stores.requests.TOKEN_BUCKET_FN_LUA`, which :mod:`serving.ratelimit` runs too): an empty
one answers ``{2, wait_ms}`` and nothing else is read.
It returns ``{0, reason}`` (and changes nothing but the seen mark and the buckets) whenever the full pipeline has to
answer: a rebuild, an evicted or exhausted celebrity cache, a body or graph-set miss, or too few
visible candidates to fill the page without a refill.

Keys are derived from reader and author ids inside the script (like the fan-out script), so it runs
on a single Redis, not on Redis Cluster (see docs/performance.md for the cluster layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from stores import counters, graph, moderation
from stores import posts as post_store
from stores import redis as redis_store
from stores import timelines as tls
from stores import users as users_store
from stores.requests import TOKEN_BUCKET_FN_LUA

# ARGV: reader, hi ("+inf" or "(<id>"), want, limit, threshold, cap, now_ms, n_buckets, then per
# rate-limit bucket: key, rate_per_s, burst (stores.requests' token bucket, as serving/ratelimit.py takes
# it; first: {2, wait_ms} and nothing taken or read when one is empty), then "1" to return the page
# authors' ranking context (follower counts, friendship with the reader: what
# models.ranker.redis_author_context reads)
FEED_PAGE_LUA = TOKEN_BUCKET_FN_LUA + """
local rd, hi, want, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local threshold, cap = tonumber(ARGV[5]), tonumber(ARGV[6])
local nb = tonumber(ARGV[8] or '0')
if nb > 0 then
  local keys, rates, bursts = {}, {}, {}
  for i = 1, nb do
    keys[i], rates[i], bursts[i] = ARGV[3 * i + 6], tonumber(ARGV[3 * i + 7]), tonumber(ARGV[3 * i + 8])
  end
  local wait = take(keys, rates, bursts)
  if wait > 0 then return {2, wait} end
end
if redis.call('EXISTS', K_USER(rd)) == 0 then return {0, 'reader not cached'} end
redis.call('ZADD', 'K_SEEN', ARGV[7], rd)
local stale = redis.call('EXISTS', K_TLSTALE(rd))
local ok = redis.call('EXISTS', K_TLOK(rd))
local present = redis.call('EXISTS', K_TL(rd))
local built = redis.call('EXISTS', K_TLB(rd))
if stale == 1 or ok == 0 or (present == 0 and built == 0) then return {0, 'rebuild'} end
local ids = redis.call('ZREVRANGEBYSCORE', K_TL(rd), hi, '-inf', 'LIMIT', 0, want)
for _, f in ipairs(redis.call('SMEMBERS', K_FOLLOWING(rd))) do
  if redis.call('SCARD', K_FOLLOWERS(f)) > threshold then
    local page = redis.call('ZREVRANGEBYSCORE', K_AP(f), hi, '-inf', 'LIMIT', 0, want)
    local n = redis.call('ZCARD', K_AP(f))
    if n == 0 or (#page < want and n >= cap) then return {0, 'celebrity cache'} end
    for _, x in ipairs(page) do ids[#ids + 1] = x end
  end
end
local nums = {}
for i, x in ipairs(ids) do nums[i] = tonumber(x) end
table.sort(nums, function(a, b) return a > b end)
local cand, last = {}, nil
for _, x in ipairs(nums) do
  if x ~= last and #cand < want then cand[#cand + 1] = x end
  last = x
end
local exhausted = #cand < want
local miss = nil
local function check(id)
  local sid = string.format('%.0f', id)
  local raw = redis.call('GET', K_POST(sid))
  if not raw then miss = 'body miss' return nil end
  if redis.call('SISMEMBER', 'K_DELETED', sid) == 1 then return nil end
  local p = cjson.decode(raw)
  local a, vis = p['author_id'], p['visibility'] or 'PUBLIC'
  if p['deleted'] == true or redis.call('SISMEMBER', K_NEG(rd), a) == 1 then return nil end
  if a ~= rd and redis.call('SISMEMBER', 'K_MODHIDDEN', sid) == 1 then return nil end
  if vis ~= 'PUBLIC' and a ~= rd then
    if redis.call('EXISTS', K_GOK(a)) == 0 then miss = 'graph sets not loaded' return nil end
    local show = false
    if vis == 'FOLLOWERS' then show = redis.call('SISMEMBER', K_FOLLOWERS(a), rd) == 1
    elseif vis == 'FRIENDS' then show = redis.call('SISMEMBER', K_FRIENDS(a), rd) == 1 end
    if not show then return nil end
  end
  return raw, p
end
local bodies, posts, more = {}, {}, false
for _, id in ipairs(cand) do
  local raw, p = check(id)
  if miss then return {0, miss} end
  if raw then
    if #bodies == limit then more = true break end
    bodies[#bodies + 1] = raw
    posts[#posts + 1] = p
  end
end
if not more and not exhausted then return {0, 'refill'} end
local seen_author, authors = {}, {}
local counts, profiles, aff = {}, {}, {}
for i, p in ipairs(posts) do
  counts[i] = redis.call('HGETALL', K_CNT(string.format('%.0f', p['post_id'])))
  local a = p['author_id']
  if not seen_author[a] then
    seen_author[a] = true
    authors[#authors + 1] = a
    profiles[#profiles + 1] = redis.call('HGETALL', K_USER(a))
  end
end
if #authors > 0 then aff = redis.call('HMGET', K_AFF(rd), unpack(authors)) end
local followers, friends = {}, {}
if ARGV[9 + 3 * nb] == '1' and #authors > 0 then
  for i, a in ipairs(authors) do followers[i] = redis.call('SCARD', K_FOLLOWERS(a)) end
  friends = redis.call('SMISMEMBER', K_FRIENDS(rd), unpack(authors))
end
return {1, more and 1 or 0, bodies, counts, authors, profiles, aff,
        redis.call('HGETALL', K_FRESH(rd)), redis.call('HGETALL', 'K_WM'), followers, friends}
"""


def _lua(template: str) -> str:
    """The script with its key functions (``K_TL(rd)`` builds ``tl:{rd}`` as :func:`stores.timelines.k_timeline`
    does) and its constant keys (quoted placeholders) taken from the stores' key layout."""
    fns = redis_store.lua_key_functions(
        K_TLSTALE=tls.k_stale, K_TLOK=tls.k_ok, K_TLB=tls.k_built, K_TL=tls.k_timeline,
        K_FOLLOWING=graph.k_following, K_FOLLOWERS=graph.k_followers, K_FRIENDS=graph.k_friends,
        K_AP=post_store.k_author, K_POST=post_store.k_post, K_NEG=tls.k_negative, K_GOK=graph.k_loaded,
        K_CNT=counters.counts_key, K_USER=users_store.k_user, K_AFF=counters.affinity_key, K_FRESH=tls.k_fresh)
    constants = {"'K_SEEN'": tls.SEEN, "'K_DELETED'": post_store.DELETED, "'K_MODHIDDEN'": moderation.HIDDEN,
                 "'K_WM'": tls.WATERMARK}
    for placeholder, key in constants.items():
        template = template.replace(placeholder, repr(key))
    head, sep, body = template.partition("\nlocal rd, hi")  # after the token bucket's function
    return head + "\n" + fns + sep.lstrip("\n") + body


SCRIPT = _lua(FEED_PAGE_LUA)


@dataclass(frozen=True)
class RawPage:
    """The script's answer: the page's bodies (JSON bytes, newest first) and what hydrates them."""

    more: bool  # a visible post follows the page
    bodies: list[bytes]
    counts: list[list[bytes]]  # per body, its ``cnt:`` hash as HGETALL's flat [field, value, ...] (empty: a miss)
    profiles: dict[str, list[bytes]]  # cached author profiles, flat as HGETALL answers them
    affinity: dict[str, int]
    fresh: dict[bytes, bytes]
    watermarks: dict[bytes, bytes]
    #: author -> (followers, friend of the reader), when asked for (``context=True``)
    context: dict[str, tuple[int, bool]] | None = None


@dataclass(frozen=True)
class Limited:
    """A rate-limit bucket was empty: nothing was taken or read; retry in ``wait_ms``."""

    wait_ms: int


#: a token bucket for the script: (Redis key, rate per second, burst)
BucketArgs = tuple[str, float, int]


def _pairs(flat: list[Any]) -> dict[Any, Any]:
    return dict(zip(flat[::2], flat[1::2]))


def page_script(r: aioredis.Redis) -> Any:
    """The script registered on ``r`` (EVALSHA, loaded again if this Redis lost it)."""
    return r.register_script(SCRIPT)


async def feed_page(script: Any, reader: str, before: int | None, want: int, limit: int,
                    threshold: int, cap: int, now_ms: int,
                    buckets: Sequence[BucketArgs] = (), context: bool = False) -> RawPage | Limited | str:
    """One script call: the page, :class:`Limited` if a bucket of ``buckets`` is empty, or the reason
    the full pipeline must answer instead (the buckets' tokens are then taken). With ``context``, the
    page's authors' ranking context comes in the same call (:attr:`RawPage.context`)."""
    hi = f"({before}" if before is not None else "+inf"
    args: list[Any] = [reader, hi, want, limit, threshold, cap, now_ms, len(buckets)]
    for key, rate, burst in buckets:
        args += [key, rate, burst]
    args.append(1 if context else 0)
    out = await script(keys=[], args=args)
    if out[0] == 2:
        return Limited(int(out[1]))
    if out[0] == 0:
        return out[1].decode() if isinstance(out[1], bytes) else str(out[1])
    _, more, bodies, counts, authors, profiles, aff, fresh, wm, followers, friends = out
    names = [a.decode() for a in authors]
    ctx = {a: (int(n), bool(f)) for a, n, f in zip(names, followers, friends)} if context else None
    return RawPage(bool(more), bodies, counts, {a: p for a, p in zip(names, profiles) if p},
                   {a: int(v) if v is not None else 0 for a, v in zip(names, aff)}, _pairs(fresh), _pairs(wm), ctx)
