"""User writes: registration and profile updates -> ``users.v1``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from serving.auth import require_self
from serving.deps import RateLimited
from serving.errors import responses
from serving.payloads import USER_ID_PATTERN, Accepted, ProfileIn, RegisterIn
from serving.registration import Registered, mark_registered
from serving.writes import WriteDep

router = APIRouter(prefix="/users", tags=["users"], dependencies=[RateLimited],
                   responses=responses(400, 401, 403, 409, 413, 429, 503))
UserPath = Annotated[str, Path(pattern=USER_ID_PATTERN)]


@router.post("", status_code=202, response_model=Accepted, summary="Register a user (UserRegistered)")
async def register(body: RegisterIn, w: WriteDep):
    require_self(w.user, body.user_id)

    async def act() -> dict:
        event_id = await w.emit("UserRegistered", **body.model_dump())
        # read-your-writes: the users topology writes the profile later; until then this mark says "registered"
        await mark_registered(w.redis, body.user_id, w.settings.api_registered_ttl_s)
        return {"event_id": event_id, "user_id": body.user_id}

    return await w.once(act)


@router.patch("/{user_id}", status_code=202, response_model=Accepted, summary="Update a profile (ProfileUpdated)",
              dependencies=[Registered])
async def update_profile(user_id: UserPath, body: ProfileIn, w: WriteDep):
    require_self(w.user, user_id)

    async def act() -> dict:
        event_id = await w.emit("ProfileUpdated", user_id=user_id, **body.model_dump())
        return {"event_id": event_id, "user_id": user_id}

    return await w.once(act)
