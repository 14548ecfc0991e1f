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
    millisecond): it is applied again, which changes nothing. Ties: :func:`edge_version`.
    """
    if name in ("Followed", "Unfollowed"):
        e = edge_key(FOLLOW, v["follower_id"], v["followee_id"])
        return [e], [e]
    if name in ("FriendRequestSent", "FriendRequestDeclined"):
        e = edge_key(REQUEST, v["from_id"], v["to_id"])
        return [e], [e]
    if name == "FriendRequestAccepted":
        a, b = v["from_id"], v["to_id"]
        guards = [edge_key(REQUEST, a, b), edge_key(FRIEND, a, b)]
        return guards, guards + [edge_key(REQUEST, b, a), edge_key(FOLLOW, a, b), edge_key(FOLLOW, b, a)]
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
