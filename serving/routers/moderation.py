"""Moderation over HTTP: users report posts, authors appeal once, moderators work the review queue.

Every moderator route needs a token with the ``moderator`` role (403 otherwise). Writes are events
on ``moderation.v1`` (the audit trail); the moderation topology applies them (a decision overrides
the models and is enforced in every feed at once).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from core.ids import MAX_ID
from serving import ownership
from serving.auth import audit, current_moderator
from serving.deps import RateLimited, RedisDep, _take
from serving.errors import responses
from serving.payloads import Accepted
from serving.ratelimit import Bucket
from serving.registration import Registered
from serving.writes import WriteDep
from stores import moderation as mod

PostPath = Annotated[int, Path(ge=1, le=MAX_ID, description="time-sortable post id")]
Moderator = Annotated[str, Depends(current_moderator)]
REPORTS_PER_S, REPORTS_BURST = 0.05, 5  # a user may report 5 posts at once, then one per 20 s
router = APIRouter(tags=["moderation"], dependencies=[RateLimited, Registered],
                   responses=responses(400, 401, 403, 413, 429, 503))
queue_router = APIRouter(prefix="/moderation", tags=["moderation"],
                         responses={**responses(401, 403, 413, 503)})


class ReportIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="why, e.g. 'spam'")


class AppealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


class DecisionIn(BaseModel):
    decision: Literal["ALLOW", "LIMIT", "REMOVE"]
    reason: str = Field(min_length=1, max_length=2000, description="why (shown to the author, kept in the audit trail)")


def _post_ctx(post_id: int, author: str) -> dict[str, Any]:
    return {"content_key": f"post:{post_id}", "kind": "POST", "content_id": post_id, "post_id": post_id,
            "author_id": author}


async def _live_author(w: Any, post_id: int) -> str:
    author = await ownership.post_author(w.redis, post_id, w.durable)
    if author is None:
        raise HTTPException(404, f"no post {post_id}")
    return author


async def report_rate_limit(request: Request, w: WriteDep) -> None:
    """Reports have their own, small bucket per user (on top of the write limits)."""
    if w.settings.api_rate_limit_enabled:
        await _take(request, [Bucket(f"rl:report:{w.user}", REPORTS_PER_S, REPORTS_BURST)])


@router.post("/posts/{post_id}/reports", status_code=202, response_model=Accepted,
             summary="Report a post (ContentReported): it enters the moderators' review queue",
             dependencies=[Depends(report_rate_limit)], responses=responses(404))
async def report_post(post_id: PostPath, body: ReportIn, w: WriteDep):
    async def act() -> dict:
        author = await _live_author(w, post_id)
        event_id = await w.emit("ContentReported", **_post_ctx(post_id, author), reason=body.reason)
        return {"event_id": event_id, "post_id": post_id}

    return await w.once(act)


@router.post("/posts/{post_id}/appeal", status_code=202, response_model=Accepted,
             summary="Appeal the moderation decision on your post (DecisionAppealed), once",
             responses=responses(404, 409))
async def appeal_post(post_id: PostPath, body: AppealIn, w: WriteDep):
    async def act() -> dict:
        author = await _live_author(w, post_id)
        if author != w.user:
            raise HTTPException(403, f"only the author may appeal post {post_id}")
        if not await w.redis.sismember(mod.HIDDEN, str(post_id)):
            raise HTTPException(409, f"post {post_id} is not limited or removed: nothing to appeal")
        if not await w.redis.set(f"mod:appealed:post:{post_id}", w.user, nx=True):
            raise HTTPException(409, f"post {post_id} was already appealed (once per post)")
        event_id = await w.emit("DecisionAppealed", **_post_ctx(post_id, author), reason=body.reason)
        return {"event_id": event_id, "post_id": post_id}

    return await w.once(act)


@queue_router.get("/queue", summary="The review queue, oldest first: uncertain model scores, reports, appeals")
async def review_queue(
    moderator: Moderator, redis: RedisDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[int | None, Query(ge=0, description="queued_at of the last item of the previous page")] = None,
) -> dict[str, Any]:
    rows = await mod.queue_async(redis, limit, after)
    states = await mod.states_async(redis, [k for k, _ in rows])
    items = [{"content_key": k, "queued_at": at, **st.get("ctx", {}), "model": st.get("m"),
              "moderator": st.get("d"), "reports": st["reports"], "appeal": st.get("appeal")}
             for (k, at), st in zip(rows, states)]
    return {"items": items, "next_after": rows[-1][1] if len(rows) == limit else None}


@queue_router.post("/posts/{post_id}/decision", status_code=202, response_model=Accepted,
                   summary="Decide on a post (ModeratorDecided): overrides the models, kept as the audit trail",
                   responses=responses(400, 404, 409, 429))
async def decide_post(post_id: PostPath, body: DecisionIn, moderator: Moderator, w: WriteDep):
    async def act() -> dict:
        author = await _live_author(w, post_id)
        st = (await mod.states_async(w.redis, [f"post:{post_id}"]))[0]
        overrides = (st.get("m") or {}).get("event_id")
        event_id = await w.emit("ModeratorDecided", **_post_ctx(post_id, author), decision=body.decision,
                                reason=body.reason, overrides=overrides)
        audit.info("moderator %s decided %s on post %s", moderator, body.decision, post_id,
                   extra={"audit": "moderator_decision", "moderator": moderator, "post_id": post_id,
                          "decision": body.decision, "event_id": event_id})
        return {"event_id": event_id, "post_id": post_id}

    return await w.once(act)
