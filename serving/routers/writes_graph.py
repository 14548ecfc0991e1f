"""Social-graph writes under ``/users/{user_id}``: follow, friend requests, block -> ``graph.v1``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from serving.auth import require_self
from serving.errors import ErrorBody, responses
from serving.feed.engines import ReadEngines, ReadsDep
from serving.ownership import friend_request_pending
from serving.payloads import USER_ID_PATTERN, Accepted
from serving.registration import require_target
from serving.writes import Gated, Write, WriteDep, WriteRoute, self_reference

router = APIRouter(prefix="/users/{user_id}", tags=["graph"], dependencies=[Gated], route_class=WriteRoute,
                   responses=responses(400, 401, 403, 409, 413, 429, 503))
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN, description="the acting user (the token's subject)")]
NOT_PENDING = {404: {"model": ErrorBody, "description": "no pending friend request from from_id"}}
NO_USER = {404: {"model": ErrorBody, "description": "no such (registered) user"}}
NOT_FRIENDS = {404: {"model": ErrorBody, "description": "not friends with friend_id"}}
OtherPath = Annotated[str, Path(pattern=USER_ID_PATTERN, description="the other user")]


async def _edge(w: Write, user_id: str, other: str, field: str, verb: str, record: str,
                a: str, b: str, *, pending_from_other: bool = False, target: ReadEngines | None = None,
                friends_on: ReadEngines | None = None) -> object:
    """Produce a two-user graph event ``record(a=user_id, b=other)`` after the self checks.

    ``pending_from_other``: answer 404 with no event unless ``other``'s friend request to
    ``user_id`` is pending in the graph view (accept and decline). ``target``: answer 404 with no
    event unless ``other`` registered (follow, friend request, block), asked on these read engines.
    ``friends_on``: answer 404 with no event unless the two are friends in the graph view (unfriend).
    """
    require_self(w.user, user_id)
    if other == user_id:
        raise self_reference(field, f"you cannot {verb} yourself")

    async def act() -> dict:
        if target is not None and not w.known_registered(other):  # (checked in the write's first call)
            await require_target(w.redis, target, other)
        if pending_from_other and not await friend_request_pending(w.redis, other, user_id, w.durable):
            raise HTTPException(404, f"no pending friend request from {other} (a request sent moments ago "
                                     "may not be recorded yet: retry shortly)")
        if friends_on is not None and not (await friends_on.run(friends_on.readers.graph.relation,
                                                                  user_id, other)).friend:
            raise HTTPException(404, f"you are not friends with {other} (a friendship accepted moments ago "
                                     "may not be recorded yet: retry shortly)")
        return {"event_id": await w.emit(record, **{a: user_id, b: other})}

    if target is not None:
        w.check_registered(other)
    return await w.once(act)


@router.put("/following/{followee_id}", status_code=202, response_model=Accepted, summary="Follow (Followed)",
            responses=NO_USER)
async def follow(user_id: UserPath, followee_id: OtherPath, w: WriteDep, e: ReadsDep):
    return await _edge(w, user_id, followee_id, "followee_id", "follow", "Followed", "follower_id", "followee_id",
                       target=e)


@router.delete("/following/{followee_id}", status_code=202, response_model=Accepted,
               summary="Unfollow (Unfollowed)")
async def unfollow(user_id: UserPath, followee_id: OtherPath, w: WriteDep):
    return await _edge(w, user_id, followee_id, "followee_id", "unfollow", "Unfollowed",
                       "follower_id", "followee_id")


@router.post("/friend-requests/{to_id}", status_code=202, response_model=Accepted,
             summary="Send a friend request (FriendRequestSent)", responses=NO_USER)
async def send_friend_request(user_id: UserPath, to_id: OtherPath, w: WriteDep, e: ReadsDep):
    return await _edge(w, user_id, to_id, "to_id", "befriend", "FriendRequestSent", "from_id", "to_id", target=e)


@router.post("/friend-requests/{from_id}/accept", status_code=202, response_model=Accepted,
             summary="Accept a pending friend request from from_id (FriendRequestAccepted)",
             responses=NOT_PENDING)
async def accept_friend_request(user_id: UserPath, from_id: OtherPath, w: WriteDep):
    return await _edge(w, user_id, from_id, "from_id", "befriend", "FriendRequestAccepted", "to_id", "from_id",
                       pending_from_other=True)


@router.post("/friend-requests/{from_id}/decline", status_code=202, response_model=Accepted,
             summary="Decline a pending friend request from from_id (FriendRequestDeclined)",
             responses=NOT_PENDING)
async def decline_friend_request(user_id: UserPath, from_id: OtherPath, w: WriteDep):
    return await _edge(w, user_id, from_id, "from_id", "befriend", "FriendRequestDeclined", "to_id", "from_id",
                       pending_from_other=True)


@router.delete("/friends/{friend_id}", status_code=202, response_model=Accepted,
               summary="Unfriend (Unfriended): ends the friendship and the follows both ways",
               responses=NOT_FRIENDS)
async def unfriend(user_id: UserPath, friend_id: OtherPath, w: WriteDep, e: ReadsDep):
    return await _edge(w, user_id, friend_id, "friend_id", "unfriend", "Unfriended", "user_id", "friend_id",
                       friends_on=e)


@router.put("/blocks/{blocked_id}", status_code=202, response_model=Accepted, summary="Block (Blocked)",
            responses=NO_USER)
async def block(user_id: UserPath, blocked_id: OtherPath, w: WriteDep, e: ReadsDep):
    return await _edge(w, user_id, blocked_id, "blocked_id", "block", "Blocked", "blocker_id", "blocked_id",
                       target=e)


@router.delete("/blocks/{blocked_id}", status_code=202, response_model=Accepted, summary="Unblock (Unblocked)")
async def unblock(user_id: UserPath, blocked_id: OtherPath, w: WriteDep):
    return await _edge(w, user_id, blocked_id, "blocked_id", "unblock", "Unblocked", "blocker_id", "blocked_id")
