"""Pure social-graph logic: map a graph.v1 event to edge changes, negative-set changes and timeline jobs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from streams.errors import PoisonRecord

BACKFILL, PURGE = "backfill", "purge"
GRAPH_RECORDS = ("Followed", "Unfollowed", "FriendRequestSent", "FriendRequestAccepted",
                 "FriendRequestDeclined", "Unfriended", "Blocked", "Unblocked")


# the two users each graph event names (every graph event needs both registered)
USER_FIELDS = {"Followed": ("follower_id", "followee_id"), "Unfollowed": ("follower_id", "followee_id"),
               "FriendRequestSent": ("from_id", "to_id"), "FriendRequestAccepted": ("from_id", "to_id"),
               "FriendRequestDeclined": ("from_id", "to_id"), "Unfriended": ("user_id", "friend_id"),
               "Blocked": ("blocker_id", "blocked_id"), "Unblocked": ("blocker_id", "blocked_id")}


def named_users(name: str, v: dict[str, Any]) -> tuple[str, ...]:
    """The user ids a graph event names (none for a record this topology does not know)."""
    return tuple(v[f] for f in USER_FIELDS.get(name, ()))


@dataclass
class GraphPlan:
    """Edge ops ``(method, a, b)``, negatives ``(reader, author, hidden)``, timeline jobs ``(kind, reader, author)``."""

    edges: list[tuple[str, str, str]] = field(default_factory=list)
    negatives: list[tuple[str, str, bool]] = field(default_factory=list)
    timelines: list[tuple[str, str, str]] = field(default_factory=list)


# -- last writer wins per edge (re-delivered events) ----------------------------------------------
FOLLOW, FRIEND, REQUEST, BLOCK = "follow", "friend", "request", "block"
#: order of graph events within one millisecond: a later step of a relation's life (accepting a
#: request after sending it) and a restrictive event (ending or denying a relation) win
RANK = {"Followed": 0, "FriendRequestSent": 0, "Unblocked": 0, "FriendRequestAccepted": 1,
        "Unfollowed": 2, "FriendRequestDeclined": 2, "Unfriended": 3, "Blocked": 4}


def edge_key(relation: str, a: str, b: str) -> str:
    """The clock key of one edge; ``friend`` is symmetric, the others are directed ``a -> b``."""
    if relation == FRIEND:
        a, b = sorted((a, b))
    return f"{relation}|{a}|{b}"


def edge_version(name: str, at_ms: int) -> int:
    """An event's version on its edges: ``occurred_at`` in µs plus its :data:`RANK` (the tie rule)."""
    return at_ms * 1000 + RANK.get(name, 0)


def edge_clock(name: str, v: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(guards, stamps)`` of a graph event, as :func:`edge_key` strings.

    Rule (issue 13/14: Kafka delivers at least once, and retries reuse event ids): every edge keeps
    the version of the last event applied to it. An event older than the version of one of its
    ``guards`` is ignored (a re-sent ``Followed`` after the ``Unfollowed`` changes nothing); an
    applied event raises its ``stamps`` (the guards plus every other edge it changes) to its
    version. An equal version is the same event re-delivered (or one of the same kind in the same
    millisecond): it is applied again, which changes nothing. A follow, a request or an accept is
    also guarded by the pair's block edges both ways (never stamps them): re-delivered after an
    unblock newer than it, one that a block made a no-op stays one. Ties: :func:`edge_version`.
    """
    if name in ("Followed", "Unfollowed"):
        a, b = v["follower_id"], v["followee_id"]
        e = edge_key(FOLLOW, a, b)
        return [e] + (_blocks(a, b) if name == "Followed" else []), [e]
    if name in ("FriendRequestSent", "FriendRequestDeclined"):
        a, b = v["from_id"], v["to_id"]
        e = edge_key(REQUEST, a, b)
        return [e] + (_blocks(a, b) if name == "FriendRequestSent" else []), [e]
    if name == "FriendRequestAccepted":
        a, b = v["from_id"], v["to_id"]
        guards = [edge_key(REQUEST, a, b), edge_key(FRIEND, a, b)]
        return guards + _blocks(a, b), guards + [edge_key(REQUEST, b, a), edge_key(FOLLOW, a, b),
                                                  edge_key(FOLLOW, b, a)]
    if name == "Unfriended":
        a, b = v["user_id"], v["friend_id"]
        e = edge_key(FRIEND, a, b)
        return [e], [e, edge_key(FOLLOW, a, b), edge_key(FOLLOW, b, a)]
    if name in ("Blocked", "Unblocked"):
        a, b = v["blocker_id"], v["blocked_id"]
        e = edge_key(BLOCK, a, b)
        if name == "Unblocked":
            return [e], [e]
        return [e], [e, edge_key(FRIEND, a, b), edge_key(FOLLOW, a, b), edge_key(FOLLOW, b, a),
                     edge_key(REQUEST, a, b), edge_key(REQUEST, b, a)]
    return [], []


def _blocks(a: str, b: str) -> list[str]:
    """The block edges both ways: guards of the events a block makes a no-op (a follow, a request,
    an accept), so one of those ignored while blocked stays ignored when re-delivered after the
    unblock (its own edge's clock alone would let it apply then)."""
    return [edge_key(BLOCK, a, b), edge_key(BLOCK, b, a)]


def is_stale(version: int, guards: list[str], clocks: dict[str, int]) -> bool:
    """Whether an event of ``version`` is older than one of its guards' last applied versions."""
    return any(clocks.get(g, -1) > version for g in guards)


class UnknownGraphEvent(PoisonRecord):
    """A record on graph.v1 that this topology does not know."""


class NoPendingRequest(PoisonRecord):
    """An accept or decline of a friend request that is not pending (never sent, or already answered)."""


class UnknownUser(PoisonRecord):
    """A graph event naming a user who never registered (on users.v1)."""


class NotFriends(PoisonRecord):
    """An unfriend of someone who is not a friend (never was, or already unfriended or blocked)."""


def plan_graph(name: str, v: dict[str, Any], *, blocked: bool, pending: bool = False,
               friends: bool = False, unknown: Collection[str] = ()) -> GraphPlan:
    """Plan one graph event; ``blocked`` says whether its two users block each other either way.

    Following and friendship are separate relations: ``Unfollowed`` removes one follow edge and
    keeps a friendship (and with it FRIENDS visibility); ``Unfriended`` ends the friendship and the
    follows both ways (as accepting created them), and needs ``friends`` (the two are friends now),
    else it raises :class:`NotFriends` and changes nothing.

    ``pending`` says whether ``from_id``'s friend request to ``to_id`` is pending; an accept or a
    decline without one raises :class:`NoPendingRequest` (dead-lettered with that reason: events
    reach graph.v1 without the API's check too), so nobody becomes a friend by accepting a request
    that was never sent, declined or already accepted.

    ``unknown`` holds users known not to be registered; an event naming one raises
    :class:`UnknownUser` (dead-lettered with that reason) and changes nothing.
    """
    p = GraphPlan()
    missing = sorted(set(named_users(name, v)) & set(unknown))
    if missing:
        raise UnknownUser(f"{name}: user {', '.join(missing)} never registered")
    if name in ("FriendRequestAccepted", "FriendRequestDeclined") and not pending:
        raise NoPendingRequest(f"{name}: no pending friend request from {v['from_id']} to {v['to_id']}")
    if name == "Followed":
        f, e = v["follower_id"], v["followee_id"]
        if f == e or blocked:
            return p
        p.edges.append(("follow", f, e))
        p.negatives.append((f, e, False))
        p.timelines.append((BACKFILL, f, e))
    elif name == "Unfollowed":
        f, e = v["follower_id"], v["followee_id"]
        p.edges.append(("unfollow", f, e))
        p.negatives.append((f, e, True))
        p.timelines.append((PURGE, f, e))
    elif name == "FriendRequestSent":
        if not blocked and v["from_id"] != v["to_id"]:
            p.edges.append(("request_sent", v["from_id"], v["to_id"]))
    elif name == "FriendRequestDeclined":
        p.edges.append(("request_cleared", v["from_id"], v["to_id"]))
    elif name == "FriendRequestAccepted":
        a, b = v["from_id"], v["to_id"]
        if a == b or blocked:
            return p
        p.edges.append(("befriend", a, b))
        p.negatives += [(a, b, False), (b, a, False)]
        p.timelines += [(BACKFILL, a, b), (BACKFILL, b, a)]
    elif name == "Unfriended":
        a, b = v["user_id"], v["friend_id"]
        if not friends:
            raise NotFriends(f"Unfriended: {a} and {b} are not friends")
        p.edges.append(("unfriend", a, b))
        p.negatives += [(a, b, True), (b, a, True)]
        p.timelines += [(PURGE, a, b), (PURGE, b, a)]
    elif name == "Blocked":
        a, b = v["blocker_id"], v["blocked_id"]
        if a == b:
            return p
        p.edges.append(("block", a, b))
        p.negatives += [(a, b, True), (b, a, True)]
        p.timelines += [(PURGE, a, b), (PURGE, b, a)]
    elif name == "Unblocked":
        a, b = v["blocker_id"], v["blocked_id"]
        p.edges.append(("unblock", a, b))
        p.negatives += [(a, b, False), (b, a, False)]
    else:
        raise UnknownGraphEvent(f"unexpected record {name} on graph.v1")
    return p


# -- a batch folded in memory (topologies.graph.app.process_graph_batch) ----------------------------
#: the set memberships a batch reads per user pair, both ways: ``(kind, a, b)`` is "``b`` is in
#: ``a``'s set of that kind" (followers, following, friends, blocked, pending requests to ``a``)
KINDS = ("fers", "fing", "friends", "blk", "req")


def pair_key(a: str, b: str) -> str:
    """The ``edge_clocks`` partition of the user pair ``{a, b}`` (as :func:`stores.graph.pair_key`)."""
    return "|".join(sorted((a, b)))


def event_pair(name: str, v: dict[str, Any]) -> tuple[str, str] | None:
    """The pair whose blocks an event checks (none for Blocked and Unblocked, as before)."""
    for a, b in (("follower_id", "followee_id"), ("from_id", "to_id"), ("user_id", "friend_id")):
        if a in v:
            return v[a], v[b]
    return None


@dataclass
class Job:
    """A timeline job of an applied event: back-fill ``reader`` with ``author``'s posts, or purge them."""

    kind: str
    reader: str
    author: str
    is_friend: bool = False  # BACKFILL: whether ``reader`` was ``author``'s friend at that point


@dataclass
class Applied:
    """What folding one event did: ``error`` (refused, no effect), ``stale`` (ignored: an edge it
    names had a newer event applied) or its timeline ``jobs`` (applied)."""

    error: PoisonRecord | None = None
    stale: bool = False
    jobs: list[Job] = field(default_factory=list)


@dataclass
class GraphBatch:
    """A batch of graph events folded in offset order over the stores' state read before it.

    State in: ``sets`` (``(kind, owner, member) -> bool``, every :data:`KINDS` membership of every
    pair the batch names, both ways), ``followers`` (follower count per named user), ``clocks``
    (``pair key -> edge -> version``), ``durable_pending`` (``(from, to)`` requests found pending
    in Cassandra but not in Redis). Each event sees the effect of the ones before it, as if applied
    one at a time. Out, final state only (idempotent, order-free): ``changed`` set memberships
    (kinds above plus ``blkby``), ``rows`` (``(table, partition, clustering) -> since`` or None to
    delete), ``negatives`` (``(reader, author) -> hidden``), ``counted`` (users whose counts are
    rewritten), ``stamps`` (``(pair key, edge) -> version``).
    """

    sets: dict[tuple[str, str, str], bool]
    followers: dict[str, int]
    clocks: dict[str, dict[str, int]]
    durable_pending: set[tuple[str, str]] = field(default_factory=set)
    celebrity_threshold: int = 10_000
    changed: dict[tuple[str, str, str], bool] = field(default_factory=dict)
    rows: dict[tuple[str, str, str], int | None] = field(default_factory=dict)
    negatives: dict[tuple[str, str], bool] = field(default_factory=dict)
    counted: dict[str, None] = field(default_factory=dict)
    stamps: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- state ---------------------------------------------------------------------------------
    def has(self, kind: str, owner: str, member: str) -> bool:
        return self.sets.get((kind, owner, member), False)

    def _set(self, kind: str, owner: str, member: str, on: bool) -> None:
        key = (kind, owner, member)
        if kind == "fers" and self.sets.get(key, False) != on:
            self.followers[owner] = self.followers.get(owner, 0) + (1 if on else -1)
        self.sets[key] = on
        self.changed[key] = on

    def _row(self, table: str, part: str, clust: str, since: int | None) -> None:
        self.rows[(table, part, clust)] = since

    def pending(self, from_id: str, to_id: str) -> bool:
        """Whether ``from_id``'s request to ``to_id`` is pending (Redis, else Cassandra, unless this
        batch already changed it: then both stores hold the batch's value)."""
        key = ("req", to_id, from_id)
        if self.sets.get(key, False):
            return True
        return key not in self.changed and (from_id, to_id) in self.durable_pending

    # -- edge operations (as stores.graph.GraphWriter) -----------------------------------------
    def follow(self, f: str, e: str, at: int) -> None:
        self._set("fers", e, f, True)
        self._set("fing", f, e, True)
        self._row("followers", e, f, at)
        self._row("following", f, e, at)
        self.counted.update(dict.fromkeys((f, e)))

    def unfollow(self, f: str, e: str, _at: int = 0) -> None:
        self._set("fers", e, f, False)
        self._set("fing", f, e, False)
        self._row("followers", e, f, None)
        self._row("following", f, e, None)
        self.counted.update(dict.fromkeys((f, e)))

    def _end_friendship(self, a: str, b: str) -> None:
        self._set("friends", a, b, False)
        self._set("friends", b, a, False)
        self._row("friends", a, b, None)
        self._row("friends", b, a, None)

    def unfriend(self, a: str, b: str, _at: int = 0) -> None:
        self._end_friendship(a, b)
        self.unfollow(a, b)
        self.unfollow(b, a)

    def request_sent(self, from_id: str, to_id: str, at: int) -> None:
        self._set("req", to_id, from_id, True)
        self._row("friend_requests", to_id, from_id, at)

    def request_cleared(self, from_id: str, to_id: str, _at: int = 0) -> None:
        self._set("req", to_id, from_id, False)
        self._row("friend_requests", to_id, from_id, None)

    def befriend(self, a: str, b: str, at: int) -> None:
        self.request_cleared(a, b)
        self.request_cleared(b, a)
        self.follow(a, b, at)
        self.follow(b, a, at)
        self._set("friends", a, b, True)
        self._set("friends", b, a, True)
        self._row("friends", a, b, at)
        self._row("friends", b, a, at)

    def block(self, blocker: str, blocked: str, at: int) -> None:
        self._set("blk", blocker, blocked, True)
        self._set("blkby", blocked, blocker, True)
        self.request_cleared(blocked, blocker)
        self.request_cleared(blocker, blocked)
        self._row("blocks", blocker, blocked, at)
        self._end_friendship(blocker, blocked)
        self.unfollow(blocker, blocked)
        self.unfollow(blocked, blocker)

    def unblock(self, blocker: str, blocked: str, _at: int = 0) -> None:
        self._set("blk", blocker, blocked, False)
        self._set("blkby", blocked, blocker, False)
        self._row("blocks", blocker, blocked, None)

    # -- one event -----------------------------------------------------------------------------
    def apply(self, name: str, v: dict[str, Any], at: int, unknown: Collection[str] = ()) -> Applied:
        """Fold one event (occurred at ``at`` ms) as :func:`topologies.graph.app.process_graph` applied
        it alone: refusals first, then last writer wins per edge, then its edges, negatives and jobs."""
        pair = event_pair(name, v)
        blocked = pair is not None and (self.has("blk", *pair) or self.has("blk", pair[1], pair[0]))
        pending = (name in ("FriendRequestAccepted", "FriendRequestDeclined")
                   and self.pending(v["from_id"], v["to_id"]))
        friends = name == "Unfriended" and self.has("friends", v["user_id"], v["friend_id"])
        try:
            plan = plan_graph(name, v, blocked=blocked, pending=pending, friends=friends, unknown=unknown)
        except PoisonRecord as exc:
            return Applied(error=exc)
        guards, stamps = edge_clock(name, v)
        version = edge_version(name, at)
        users = named_users(name, v)
        clocks = self.clocks.setdefault(pair_key(*users), {}) if users else {}
        if guards and is_stale(version, guards, clocks):
            return Applied(stale=True)
        for op, a, b in plan.edges:
            getattr(self, op)(a, b, at)
        for reader, author, hidden in plan.negatives:
            self.negatives[(reader, author)] = hidden
        out = Applied()
        for kind, reader, author in plan.timelines:
            if kind == BACKFILL:
                if self.followers.get(author, 0) > self.celebrity_threshold:
                    continue  # merged at read time instead
                out.jobs.append(Job(kind, reader, author, self.has("friends", author, reader)))
            else:
                out.jobs.append(Job(kind, reader, author))
        pk = pair_key(*users) if users else ""
        for e in stamps:
            clocks[e] = max(clocks.get(e, -1), version)
            self.stamps[(pk, e)] = max(self.stamps.get((pk, e), -1), version)
        return out
