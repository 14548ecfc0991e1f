"""Moderation state in Redis: the hidden-post set every read path filters on, per-content state, the review queue.

Keys:

- ``mod:hidden`` SET of post ids (decimal) with a LIMIT or REMOVE in force: hidden from everyone but
  their author, in feeds, ranked feeds, trending and single-post reads (like ``posts:deleted``);
  ``mod:hidden:comments`` the same for comment ids (comment pages).
- ``mod:state:{content_key}`` HASH: ``m`` (the latest model verdict, JSON) and ``m_at`` (the content
  version it scored), ``d`` / ``d_at`` (the latest moderator decision and its time), ``ctx`` (kind,
  ids, author), ``appeal`` (the author's one appeal), ``reported_at``.
- ``mod:queue`` ZSET content_key -> when it first needed review (the content version, report or
  appeal time): uncertain model scores, reports and appeals; a moderator decision takes it out.
- ``mod:reports:{content_key}`` SET of reporters.
- ``mod:recent:{author}`` ZSET post id -> time, and ``mod:nd:{band}`` SET of authors (MinHash LSH
  bands): the spam model's posting-rate and near-duplicate features, kept a day.

Every write is idempotent and order-independent: the model and moderator parts are each
last-writer-wins on their own time, and the effective decision (the moderator's if any, else the
model's) and the hidden set are recomputed from both in the same script. So replaying
``posts.v1``, ``engagements.v1`` and ``moderation.v1`` in any interleaving rebuilds the same state.
The verdicts topic is compacted: it also holds the latest effective verdict per content.

- ``mod:loaded`` (no TTL) says this Redis holds the state rebuilt from the log. Redis runs without
  persistence, so a loss takes the marker with the state; the moderation worker then reloads the
  state from ``moderation-verdicts.v1`` (model verdicts) and ``moderation.v1`` (decisions, reports,
  appeals) and sets the marker again (``topologies.moderation.app.reload_lost_state``).

Cassandra ``moderation_decisions`` (``DDL``) is the durable copy of the two parts that decide
visibility, so the read path can still filter when Redis is down: one partition per
``(kind, content_id)`` (``kind`` is ``post`` or ``comment``), the model part in ``m`` / ``m_at``
and the moderator part in ``d`` / ``d_at`` (JSON, as in Redis). The moderation worker writes the
part it merges (:func:`record`, one Cassandra write per verdict or decision) with ``USING TIMESTAMP``
= the part's time, so each part is last-writer-wins on its own time exactly as in ``MERGE_LUA``
(a replay or any interleaving converges); the effective decision is computed on read
(:func:`effective_decision`: the moderator's part if any, else the model's). A page of ids is one
``IN`` read (:func:`hidden_durable`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis as _redis
from cassandra.cluster import Session

from stores import redis as redis_store
from stores.cassandra import prepared

HIDDEN = "mod:hidden"
HIDDEN_COMMENTS = "mod:hidden:comments"
QUEUE = "mod:queue"
LOADED = "mod:loaded"
DAY_S = 86_400
HOUR_MS = 3_600_000

DDL: list[str] = [
    ("CREATE TABLE IF NOT EXISTS {ks}.moderation_decisions (kind text, content_id bigint, m text, m_at bigint, "
     "d text, d_at bigint, PRIMARY KEY ((kind, content_id)))"),
]
SELECT_DECISIONS = "SELECT content_id, m, d FROM moderation_decisions WHERE kind=? AND content_id IN ?"
UPDATE_PART = {part: f"UPDATE moderation_decisions USING TIMESTAMP ? SET {part}=?, {part}_at=? "
                     "WHERE kind=? AND content_id=?" for part in ("m", "d")}


def k_state(key: str) -> str:
    """Redis key of one content's moderation state."""
    return f"mod:state:{key}"


def k_reports(key: str) -> str:
    """Redis key of the users who reported a content."""
    return f"mod:reports:{key}"


def k_recent(author: str) -> str:
    """Redis key of an author's recent posts (for the posting rate)."""
    return f"mod:recent:{author}"


def k_band(band: str) -> str:
    """Redis key of the authors whose recent text fell into an LSH band."""
    return f"mod:nd:{band}"


# ARGV: content_key, hidden-set member (post or comment id), part ('m' | 'd'), at, part JSON, ctx JSON,
# review ('1'|'0'), hidden set
MERGE_LUA = """
local key, pid, part, at = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local k = 'mod:state:' .. key
local cur = tonumber(redis.call('HGET', k, part .. '_at') or '-1')
if at >= cur then redis.call('HSET', k, part .. '_at', ARGV[4], part, ARGV[5]) end
redis.call('HSETNX', k, 'ctx', ARGV[6])
local m, d = redis.call('HGET', k, 'm'), redis.call('HGET', k, 'd')
local src = d or m
local eff = src and cjson.decode(src)['decision'] or 'ALLOW'
if eff == 'ALLOW' then redis.call('SREM', ARGV[8], pid) else redis.call('SADD', ARGV[8], pid) end
if part == 'd' then redis.call('ZREM', 'mod:queue', key)
elseif ARGV[7] == '1' and not d then redis.call('ZADD', 'mod:queue', 'NX', ARGV[4], key) end
return {m or false, d or false}
"""


Merge = tuple[str, int, str, int, dict[str, Any], dict[str, Any], bool]  # key, id, part, at, body, ctx, review


def merge(r: _redis.Redis, key: str, content_id: int, part: str, at: int, body: dict[str, Any],
          ctx: dict[str, Any], review: bool = False) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Merge a model (``part="m"``) or moderator (``"d"``) verdict on a post or comment (by ``key``'s
    kind); return the stored (model, moderator) parts."""
    return merge_many(r, [(key, content_id, part, at, body, ctx, review)])[0]


def merge_many(r: _redis.Redis, merges: Sequence[Merge], client: Any = None
               ) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """:func:`merge` of several parts in one pipeline, applied in order (the same as one by one); the
    stored (model, moderator) parts after each. With ``client`` (a pipeline), the merges are queued
    on it after what it holds, and the results are read from its last ``len(merges)`` replies."""
    if not merges:
        return []
    script = r.register_script(MERGE_LUA)
    p = client if client is not None else r.pipeline(transaction=False)
    for key, content_id, part, at, body, ctx, review in merges:
        script(args=[key, str(content_id), part, at, json.dumps(body, sort_keys=True), json.dumps(ctx, sort_keys=True),
                     "1" if review else "0", HIDDEN_COMMENTS if kind_of(key) == "comment" else HIDDEN], client=p)
    out = p.execute()[-len(merges):]
    return [((json.loads(m) if m else None), (json.loads(d) if d else None)) for m, d in out]


def report(r: _redis.Redis, key: str, reporter: str, at: int, ctx: dict[str, Any]) -> int:
    """Record a report (once per reporter) and queue the content; return the number of reporters."""
    p = redis_store.multi(r)
    p.sadd(k_reports(key), reporter)
    p.hsetnx(k_state(key), "ctx", json.dumps(ctx, sort_keys=True))
    p.hsetnx(k_state(key), "reported_at", at)
    p.zadd(QUEUE, {key: at}, nx=True)
    p.scard(k_reports(key))
    return int(p.execute()[-1])


def appeal(r: _redis.Redis, key: str, body: dict[str, Any], at: int) -> bool:
    """Keep the author's first appeal and queue the content; False if an appeal was already kept."""
    p = redis_store.multi(r)
    p.hsetnx(k_state(key), "appeal", json.dumps(body, sort_keys=True))
    p.zadd(QUEUE, {key: at}, nx=True)
    first = bool(p.execute()[0])
    return first


def state(r: _redis.Redis, key: str) -> dict[str, Any]:
    """A content's decoded state (empty if moderation never saw it) plus its reporter count."""
    p = r.pipeline(transaction=False)
    p.hgetall(k_state(key))
    p.scard(k_reports(key))
    raw, reports = p.execute()
    return _decode_state(raw, reports)


def effective(st: dict[str, Any]) -> dict[str, Any] | None:
    """The part in force: the moderator's decision if any, else the model verdict (None if neither)."""
    return st.get("d") or st.get("m")


def queue(r: _redis.Redis, limit: int, after: float | None = None) -> list[tuple[str, int]]:
    """Up to ``limit`` queued content keys, oldest first, with their queue time (after ``after``)."""
    lo = f"({after}" if after is not None else "-inf"
    rows = r.zrangebyscore(QUEUE, lo, "+inf", start=0, num=limit, withscores=True)
    return [(k.decode(), int(s)) for k, s in rows]


def hidden(r: _redis.Redis, post_ids: Sequence[int], which: str = HIDDEN) -> set[int]:
    """Which of ``post_ids`` (or comment ids, ``which=HIDDEN_COMMENTS``) are hidden from everyone but
    their author (one SMISMEMBER)."""
    if not post_ids:
        return set()
    flags = r.smismember(which, [str(p) for p in post_ids])
    return {p for p, f in zip(post_ids, flags) if f}


def behaviour(r: _redis.Redis, author: str, post_id: int, at: int, bands: Sequence[str]) -> tuple[int, int]:
    """Record a post in the author's recent posts and its LSH bands; ``(posts in the last hour, other
    authors sharing a band)``. Idempotent for a replayed post (ZADD/SADD by id)."""
    p = r.pipeline(transaction=False)
    if bands:
        p.sunion([k_band(b) for b in bands])
    p.zadd(k_recent(author), {str(post_id): at})
    p.expire(k_recent(author), DAY_S)
    p.zcount(k_recent(author), at - HOUR_MS + 1, at)
    for b in bands:
        p.sadd(k_band(b), author)
        p.expire(k_band(b), DAY_S)
    out = p.execute()
    dup = {m.decode() for m in out[0]} - {author} if bands else set()
    rate = out[3 if bands else 2]
    return int(rate), len(dup)


Recent = dict[str, dict[str, int]]  # author -> content id -> time
Bands = dict[str, set[str]]  # LSH band -> authors


# ARGV[1] JSON {"w": [[author, from, to]], "b": [band], "a": [[author, content id, time, [band]]]} (all strings),
# ARGV[2] TTL seconds: read the recent posts and band authors, then record the items; JSON [recent, bands]
BEHAVIOUR_LUA = """
local req = cjson.decode(ARGV[1])
local recent, bands, touched = {}, {}, {}
for i, w in ipairs(req.w) do recent[i] = redis.call('ZRANGEBYSCORE', 'mod:recent:' .. w[1], w[2], w[3], 'WITHSCORES') end
for i, b in ipairs(req.b) do bands[i] = redis.call('SMEMBERS', 'mod:nd:' .. b) end
for _, a in ipairs(req.a) do
  local k = 'mod:recent:' .. a[1]
  redis.call('ZADD', k, a[3], a[2])
  touched[k] = true
  for _, b in ipairs(a[4]) do
    redis.call('SADD', 'mod:nd:' .. b, a[1])
    touched['mod:nd:' .. b] = true
  end
end
for k, _ in pairs(touched) do redis.call('EXPIRE', k, ARGV[2]) end
return cjson.encode({recent, bands})
"""


def queue_behaviour(r: _redis.Redis, p: Any, windows: dict[str, tuple[int, int]], bands: Sequence[str],
                    adds: Sequence[tuple[str, int, int, Sequence[str]]]) -> Callable[[Iterator[Any]], tuple[Recent, Bands]]:
    """:func:`behaviour` for a batch, queued on pipeline ``p`` as one script call: read the state before
    the batch, then record the batch.

    ``windows``: author -> (first, last) time of the batch's items (their recent posts in the hour up
    to them are read); ``bands``: the LSH bands whose authors to read; ``adds``: (author, content id,
    time, bands) of each item. The returned reader takes the pipeline's results (an iterator, in queue
    order) and gives (author -> recent content id -> time, band -> authors) as they were before the
    batch (the caller folds the batch in: :func:`topologies.moderation.logic.fold_behaviour`).
    """
    authors, bands = list(windows), list(dict.fromkeys(bands))
    req = {"w": [[a, str(windows[a][0] - HOUR_MS + 1), str(windows[a][1])] for a in authors], "b": bands,
           "a": [[a, str(cid), str(at), list(bs)] for a, cid, at, bs in adds]}
    r.register_script(BEHAVIOUR_LUA)(args=[json.dumps(req), DAY_S], client=p)

    def read(results: Iterator[Any]) -> tuple[Recent, Bands]:
        rec, mem = (_as_list(x) for x in json.loads(next(results)))
        recent = {a: _pairs(rec[i]) for i, a in enumerate(authors)}
        members = {b: set(_as_list(mem[i])) for i, b in enumerate(bands)}
        return recent, members
    return read


def _as_list(x: Any) -> list[Any]:
    """A decoded cjson array (cjson encodes an empty Lua table as ``{}``)."""
    return x if isinstance(x, list) else []


def _pairs(flat: Any) -> dict[str, int]:
    """A WITHSCORES reply (``[member, score, ...]``) as member -> score."""
    flat = _as_list(flat)
    return {str(flat[i]): int(float(flat[i + 1])) for i in range(0, len(flat), 2)}


def record_many(s: Session, rows: Sequence[tuple[str, int, str, int, dict[str, Any]]], concurrency: int = 64) -> None:
    """:func:`record` of several parts (key, id, part, at, body), at most ``concurrency`` in flight; raises
    on the first failure."""
    from cassandra.concurrent import execute_concurrent_with_args

    if not rows:
        return
    if any(part not in UPDATE_PART for _, _, part, _, _ in rows):
        raise ValueError(f"unknown part in {sorted({row[2] for row in rows})}")
    for part in sorted({row[2] for row in rows}):
        params = [(int(at) * 1000, json.dumps(body, sort_keys=True), int(at), kind_of(key), int(cid))
                  for key, cid, p, at, body in rows if p == part]
        execute_concurrent_with_args(s, prepared(s, UPDATE_PART[part]), params, concurrency=concurrency,
                                     raise_on_first_error=True)


def _decode_state(raw: dict[bytes, bytes], reports: int) -> dict[str, Any]:
    out: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
    for f in ("m", "d", "ctx", "appeal"):
        if f in out:
            out[f] = json.loads(out[f])
    out["reports"] = int(reports)
    return out


async def states_async(r: Any, keys: Sequence[str]) -> list[dict[str, Any]]:
    """:func:`state` of several contents with the asyncio client the API uses (one round trip)."""
    async with r.pipeline(transaction=False) as p:
        for key in keys:
            p.hgetall(k_state(key))
            p.scard(k_reports(key))
        out = await p.execute()
    return [_decode_state(out[2 * i], out[2 * i + 1]) for i in range(len(keys))]


async def queue_async(r: Any, limit: int, after: int | None = None) -> list[tuple[str, int]]:
    """:func:`queue` with the asyncio client."""
    lo = f"({after}" if after is not None else "-inf"
    rows = await r.zrangebyscore(QUEUE, lo, "+inf", start=0, num=limit, withscores=True)
    return [(k.decode(), int(s)) for k, s in rows]


def loaded(r: _redis.Redis) -> bool:
    """Whether this Redis holds the moderation state (it was never lost, or it was rebuilt)."""
    return bool(r.exists(LOADED))


def mark_loaded(r: _redis.Redis) -> None:
    """Say that this Redis holds the moderation state."""
    r.set(LOADED, "1")


def kind_of(key: str) -> str:
    """``comment`` for a comment's key (``comment:9``), else ``post``: the hidden set :func:`merge` uses."""
    return "comment" if key.startswith("comment:") else "post"


def effective_decision(m: dict[str, Any] | None, d: dict[str, Any] | None) -> str:
    """The decision in force, as ``MERGE_LUA`` computes it: the moderator's if any, else the model's,
    else ALLOW."""
    src = d or m
    return str(src["decision"]) if src and src.get("decision") else "ALLOW"


def is_hidden(m: dict[str, Any] | None, d: dict[str, Any] | None) -> bool:
    """Whether the parts hide the content from everyone but its author (a LIMIT or REMOVE in force)."""
    return effective_decision(m, d) != "ALLOW"


def record(s: Session, key: str, content_id: int, part: str, at: int, body: dict[str, Any]) -> None:
    """:func:`record_async`, waited for."""
    record_async(s, key, content_id, part, at, body).result()


def record_async(s: Session, key: str, content_id: int, part: str, at: int, body: dict[str, Any]) -> Any:
    """Write one merged part (``"m"`` model, ``"d"`` moderator) to the durable copy: last-writer-wins on
    ``at`` (milliseconds, the write timestamp in microseconds), so it is idempotent and order-independent
    like :func:`merge` (one difference: two different parts with the same ``at`` resolve by Cassandra's
    tie rule, the greater value, where the script keeps the later-merged one)."""
    if part not in UPDATE_PART:
        raise ValueError(f"unknown part {part!r}")
    return s.execute_async(prepared(s, UPDATE_PART[part]),
                           (int(at) * 1000, json.dumps(body, sort_keys=True), int(at), kind_of(key), int(content_id)))


def decisions_durable(s: Session, ids: Sequence[int], kind: str = "post"
                      ) -> dict[int, tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """``id -> (model part, moderator part)`` from the durable copy, for the ids moderation ever saw
    (one ``IN`` read of ``ids``' partitions)."""
    if not ids:
        return {}
    rows = s.execute(prepared(s, SELECT_DECISIONS), (kind, list(dict.fromkeys(int(i) for i in ids))))
    return {int(row.content_id): ((json.loads(row.m) if row.m else None), (json.loads(row.d) if row.d else None))
            for row in rows}


def hidden_durable(s: Session, ids: Sequence[int], kind: str = "post") -> set[int]:
    """:func:`hidden` from the durable copy: which of ``ids`` (posts, or comments with
    ``kind="comment"``) a LIMIT or REMOVE hides (the read path's filter while Redis is down)."""
    return {i for i, (m, d) in decisions_durable(s, ids, kind).items() if is_hidden(m, d)}
