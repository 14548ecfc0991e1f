"""Engagement counters: durable dedup state in Cassandra, hot totals and affinity in Redis.

Cassandra ``engagement_state`` keeps, per post partition, one clustering row per dedup member
(``l:{user}``, ``r:{kind}:{user}``, ``s:{user}``, ``c:{comment_id}``), one row per minute window
(``w:{window_start}``, written with a TTL so minute rows expire, 7 days by default) and the
totals plus a revision as static columns. A change is written as one
conditional single-partition batch (``IF rev = <read rev>``), so members, window and totals move
together, atomically, and a concurrent writer (e.g. during a rebalance) is detected and retried.

Cassandra ``engagement_posts`` is the engagement topology's own knowledge of posts, learnt from
``posts.v1`` (never from another topology's tables): per post partition, static ``known``,
``deleted``, ``author_id`` and ``parked`` (set by the first park), and one clustering row per *parked* engagement (by ``event_id``,
with its record name, JSON value and source coordinates) that arrived before its post was known.
Parking is a conditional batch ``IF known = null`` and registering a post is a conditional update,
so both are Paxos-serialised on the post's partition: an engagement is either parked before the
post is registered (and then seen by the registrar's SERIAL read of the parked rows) or finds the
post known (and is applied directly); it can never fall between the two.

Redis layout (hot, rebuildable from Cassandra): ``cnt:{post_id}`` hash with ``likes``,
``comments``, ``shares`` and ``r:{KIND}``; ``aff:{reader}`` hash author -> engagement count.
A missing ``cnt:`` hash means "not cached" (e.g. after a Redis loss), never "zero": readers take
the durable totals from Cassandra and re-warm the hash only if it is still absent
(:func:`warm_hot_counts`), so a re-warm can never overwrite newer totals the topology wrote
(it writes Cassandra first, then the hash).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis as redis_lib
from cassandra import ConsistencyLevel
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BatchType

from core.clock import millis
from core.rows import Counts, Member, PostState
from stores import redis as redis_store

DDL = [
    """CREATE TABLE IF NOT EXISTS {ks}.engagement_state (
        post_id bigint, member text,
        present boolean, ts bigint, event_id text, user_id text, tomb boolean,
        w_likes bigint, w_comments bigint, w_shares bigint, w_reactions map<text, bigint>,
        rev bigint static, likes bigint static, comments bigint static, shares bigint static,
        reactions map<text, bigint> static,
        PRIMARY KEY (post_id, member))""",
    """CREATE TABLE IF NOT EXISTS {ks}.engagement_affinity (
        reader text, author text, post_id bigint, member text,
        PRIMARY KEY ((reader, author), post_id, member))""",
    """CREATE TABLE IF NOT EXISTS {ks}.rejected_engagements (
        post_id bigint, event_id text, record text, user_id text, reason text,
        occurred_at bigint, source_partition int, source_offset bigint, rejected_at bigint,
        PRIMARY KEY (post_id, event_id))""",
    """CREATE TABLE IF NOT EXISTS {ks}.engagement_posts (
        post_id bigint, event_id text,
        known boolean static, deleted boolean static, author_id text static, parked boolean static,
        record text, value text, source_partition int, source_offset bigint, parked_at bigint,
        PRIMARY KEY (post_id, event_id))""",
]


def encode_parked(value: Mapping[str, Any]) -> str:
    """JSON of a decoded engagement value (``occurred_at`` as epoch ms) for a parked row."""
    return json.dumps({**value, "occurred_at": millis(value["occurred_at"])}, sort_keys=True)


def decode_parked(text: str) -> dict[str, Any]:
    """The engagement value of a parked row (``occurred_at`` as epoch ms, which the logic accepts)."""
    out: dict[str, Any] = json.loads(text)
    return out


def window_member(window_start: int) -> str:
    """Clustering key of a minute-window row."""
    return f"w:{window_start}"


def counts_key(post_id: int) -> str:
    """Redis hash with a post's hot totals."""
    return f"cnt:{post_id}"


def affinity_key(reader: str) -> str:
    """Redis hash author -> count of the reader's standing engagements with that author."""
    return redis_store.tagged("aff:", reader)


class CounterStore:
    """Prepared statements over one Cassandra session for the engagement topology and readers."""

    def __init__(self, session: Session, *, window_ttl_s: int = 0) -> None:
        s = self.session = session
        self.window_ttl_s = window_ttl_s
        self.q_statics = s.prepare(
            "SELECT rev, likes, comments, shares, reactions FROM engagement_state WHERE post_id=? LIMIT 1")
        self.q_rows = s.prepare(
            "SELECT member, present, ts, event_id, user_id, tomb, w_likes, w_comments, w_shares, "
            "w_reactions FROM engagement_state WHERE post_id=? AND member IN ?")
        self.u_member = s.prepare(
            "UPDATE engagement_state SET present=?, ts=?, event_id=?, user_id=?, tomb=? "
            "WHERE post_id=? AND member=?")
        self.u_window = s.prepare(
            "UPDATE engagement_state USING TTL ? SET w_likes=?, w_comments=?, w_shares=?, "
            "w_reactions=? WHERE post_id=? AND member=?")
        self.u_new = s.prepare(
            "UPDATE engagement_state SET rev=?, likes=?, comments=?, shares=?, reactions=? "
            "WHERE post_id=? IF rev = null")
        self.u_cas = s.prepare(
            "UPDATE engagement_state SET rev=?, likes=?, comments=?, shares=?, reactions=? "
            "WHERE post_id=? IF rev = ?")
        self.i_aff = s.prepare(
            "INSERT INTO engagement_affinity (reader, author, post_id, member) VALUES (?, ?, ?, ?)")
        self.d_aff = s.prepare(
            "DELETE FROM engagement_affinity WHERE reader=? AND author=? AND post_id=? AND member=?")
        self.q_aff = s.prepare("SELECT COUNT(*) FROM engagement_affinity WHERE reader=? AND author=?")
        self.i_reject = s.prepare(
            "INSERT INTO rejected_engagements (post_id, event_id, record, user_id, reason, occurred_at, "
            "source_partition, source_offset, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        self.q_reject = s.prepare(
            "SELECT event_id, record, user_id, reason, source_offset FROM rejected_engagements WHERE post_id=?")

        # the engagement topology's own post table and parked engagements (see the module doc)
        self.q_post_known = s.prepare(
            "SELECT known, deleted FROM engagement_posts WHERE post_id=? LIMIT 1")
        self.u_post_first = s.prepare(  # the common case: nothing was ever parked on the post
            "UPDATE engagement_posts SET known=true, author_id=? WHERE post_id=? "
            "IF known = null AND parked = null")
        self.u_post_created = s.prepare(
            "UPDATE engagement_posts SET known=true, author_id=? WHERE post_id=? IF known = null")
        self.u_post_deleted = s.prepare(
            "UPDATE engagement_posts SET known=true, deleted=true, author_id=? WHERE post_id=? "
            "IF deleted = null")
        self.u_park = s.prepare(
            "UPDATE engagement_posts SET record=?, value=?, source_partition=?, source_offset=?, "
            "parked_at=? WHERE post_id=? AND event_id=? IF known = null")
        self.u_parked_flag = s.prepare(
            "UPDATE engagement_posts SET parked=true WHERE post_id=? IF known = null")
        self.q_parked = s.prepare(
            "SELECT event_id, record, value, source_partition, source_offset FROM engagement_posts "
            "WHERE post_id=?")
        self.d_parked = s.prepare(
            "DELETE FROM engagement_posts WHERE post_id=? AND event_id=? IF known = true")

    # -- statements the runtime executes (sync or async as it likes) ------------------------
    def load_statements(self, post_id: int, keys: Iterable[str]) -> tuple[Any, Any]:
        """The two bound reads (statics, member/window rows) that :meth:`decode_load` consumes."""
        return self.q_statics.bind((post_id,)), self.q_rows.bind((post_id, sorted(set(keys))))

    @staticmethod
    def decode_load(post_id: int, statics: Iterable[Any], rows: Iterable[Any]
                    ) -> tuple[PostState, dict[int, Counts]]:
        """A :class:`PostState` (with the requested members) and the requested windows' counts."""
        state = PostState(post_id)
        for st in statics:
            if st.rev is not None:
                state.rev = st.rev
                state.totals = Counts(st.likes or 0, st.comments or 0, st.shares or 0,
                                      dict(st.reactions or {}))
        windows: dict[int, Counts] = {}
        for r in rows:
            if r.member.startswith("w:"):
                windows[int(r.member[2:])] = Counts(r.w_likes or 0, r.w_comments or 0,
                                                    r.w_shares or 0, dict(r.w_reactions or {}))
            elif r.present is not None:
                state.members[r.member] = Member(bool(r.present), r.ts, r.event_id, r.user_id or "",
                                                 bool(r.tomb))
        return state, windows

    def save_batch(self, state: PostState, read_rev: int | None, members: Mapping[str, Member],
                   windows: Mapping[int, Counts]) -> BatchStatement:
        """One conditional single-partition batch writing members, windows and totals."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        pid = state.post_id
        for key, m in members.items():
            batch.add(self.u_member, (m.present, m.ts, m.event_id, m.user, m.tomb, pid, key))
        for start, c in windows.items():
            batch.add(self.u_window, (self.window_ttl_s, c.likes, c.comments, c.shares,
                                      dict(c.reactions), pid, window_member(start)))
        t = state.totals
        if read_rev is None:
            batch.add(self.u_new, (state.rev, t.likes, t.comments, t.shares, dict(t.reactions), pid))
        else:
            batch.add(self.u_cas, (state.rev, t.likes, t.comments, t.shares, dict(t.reactions), pid,
                                   read_rev))
        return batch

    def register_statement(self, name: str, post_id: int, author: str, *, first: bool = False) -> Any:
        """The conditional write that makes a post known (``PostDeleted`` also marks it deleted).

        ``first``: applies only if nothing was ever parked on the post either (when it does not
        apply, its result row carries ``known`` and ``parked``).
        """
        if name == "PostDeleted":
            return self.u_post_deleted.bind((author, post_id))
        return (self.u_post_first if first else self.u_post_created).bind((author, post_id))

    def park_batch(self, post_id: int, items: Iterable[tuple[str, str, Mapping[str, Any], int, int]],
                   now_ms: int) -> BatchStatement:
        """One conditional batch parking ``(event_id, record, value, partition, offset)`` items,
        applied only while the post is unknown (``IF known = null``)."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(self.u_parked_flag, (post_id,))
        for event_id, record, value, partition, offset in items:
            batch.add(self.u_park, (record, encode_parked(value), partition, offset, now_ms,
                                    post_id, event_id))
        return batch

    def parked_statement(self, post_id: int) -> Any:
        """The SERIAL read of a post's parked engagements (sees every park that committed)."""
        bound = self.q_parked.bind((post_id,))
        bound.consistency_level = ConsistencyLevel.SERIAL
        return bound

    def unpark_batch(self, post_id: int, event_ids: Iterable[str]) -> BatchStatement:
        """One conditional batch removing parked rows once they were applied."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for event_id in event_ids:
            batch.add(self.d_parked, (post_id, event_id))
        return batch

    @staticmethod
    def affinity_batch(rows: Iterable[tuple[Any, tuple[Any, ...]]]) -> BatchStatement:
        """One unlogged batch of idempotent affinity row writes ``(i_aff or d_aff, params)``."""
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for stmt, params in rows:
            batch.add(stmt, params)
        return batch

    # -- sync reads for the API and tests ------------------------------------------------------
    def totals(self, post_id: int) -> Counts:
        """Durable totals of a post (zeros if it never had an engagement)."""
        state, _ = self.decode_load(post_id, self.session.execute(self.q_statics, (post_id,)), [])
        return state.totals

    def window(self, post_id: int, window_start: int) -> Counts | None:
        """Net counts of one minute window of a post, or None."""
        rows = self.session.execute(self.q_rows, (post_id, [window_member(window_start)]))
        return self.decode_load(post_id, [], rows)[1].get(window_start)

    def affinity(self, reader: str, author: str) -> int:
        """Durable count of ``reader``'s standing engagements with ``author``'s posts."""
        return int(self.session.execute(self.q_aff, (reader, author)).one()[0])

    def rejected(self, post_id: int) -> list[dict[str, Any]]:
        """Engagements on ``post_id`` that were not counted, with the reason."""
        return [r._asdict() for r in self.session.execute(self.q_reject, (post_id,))]


    def parked(self, post_id: int) -> list[dict[str, Any]]:
        """Engagements on ``post_id`` parked until its post is known (empty once applied)."""
        return [{**r._asdict(), "value": decode_parked(r.value)}
                for r in self.session.execute(self.parked_statement(post_id)) if r.event_id]

    def post_known(self, post_id: int) -> tuple[bool, bool]:
        """``(known, deleted)`` of a post in the engagement topology's own post table."""
        row = self.session.execute(self.q_post_known, (post_id,)).one()
        return (bool(row and row.known), bool(row and row.deleted))


def redis_counts_mapping(c: Counts) -> dict[str, int]:
    """The ``cnt:{post_id}`` hash fields for totals ``c`` (zero reactions included as 0)."""
    out = {"likes": c.likes, "comments": c.comments, "shares": c.shares}
    out.update({f"r:{k}": v for k, v in c.reactions.items()})
    return out


def write_hot_counts(pipe: Any, post_id: int, c: Counts, known_kinds: Iterable[str] = ()) -> None:
    """Queue an absolute (idempotent) write of a post's totals on a Redis pipeline."""
    mapping = redis_counts_mapping(c)
    for kind in known_kinds:
        mapping.setdefault(f"r:{kind}", 0)
    pipe.hset(counts_key(post_id), mapping=mapping)


def parse_hot_counts(raw: Mapping[bytes | str, bytes | str]) -> Counts:
    """Counts from a ``cnt:{post_id}`` hash."""
    vals = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
    return Counts(vals.get("likes", 0), vals.get("comments", 0), vals.get("shares", 0),
                  {k[2:]: v for k, v in vals.items() if k.startswith("r:") and v})


def hot_counts(r: redis_lib.Redis, post_ids: Iterable[int]) -> dict[int, Counts]:
    """Hot totals of many posts in one round trip (zeros for a missing hash: tests and tools only;
    the read path uses :func:`cached_hot_counts` and falls back to Cassandra)."""
    ids = list(post_ids)
    pipe = r.pipeline(transaction=False)
    for pid in ids:
        pipe.hgetall(counts_key(pid))
    raws: list[Any] = pipe.execute()  # type: ignore[assignment]  # sync client
    return {pid: parse_hot_counts(raw) for pid, raw in zip(ids, raws)}


def cached_hot_counts(r: redis_lib.Redis, post_ids: Iterable[int]) -> dict[int, Counts]:
    """Hot totals of the posts whose ``cnt:`` hash exists (a miss is absent, not zero)."""
    ids = list(post_ids)
    pipe = r.pipeline(transaction=False)
    for pid in ids:
        pipe.hgetall(counts_key(pid))
    raws: list[Any] = pipe.execute()  # type: ignore[assignment]  # sync client
    return {pid: parse_hot_counts(raw) for pid, raw in zip(ids, raws) if raw}


WARM_TTL_S = 86_400  # a re-warmed hash expires (then is re-read); the topology's own writes keep it
_WARM_IF_ABSENT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 0
"""


def warm_hot_counts(r: redis_lib.Redis, totals: Mapping[int, Counts], ttl_s: int = WARM_TTL_S) -> None:
    """Write durable ``totals`` into the ``cnt:`` hashes that are still absent (one round trip)."""
    if not totals:
        return
    calls = []
    for pid, c in totals.items():
        args: list[Any] = [ttl_s]
        for k, v in redis_counts_mapping(c).items():
            args += [k, v]
        calls.append(([counts_key(pid)], args))
    redis_store.eval_grouped(r, _WARM_IF_ABSENT, calls)


def hot_affinity(r: redis_lib.Redis, reader: str, authors: Iterable[str]) -> dict[str, int]:
    """Affinity counts of ``reader`` with each of ``authors`` (0 when none), for ranking."""
    names = list(authors)
    if not names:
        return {}
    vals: list[Any] = r.hmget(affinity_key(reader), names)  # type: ignore[assignment]  # sync client
    return {a: int(v) if v is not None else 0 for a, v in zip(names, vals)}
