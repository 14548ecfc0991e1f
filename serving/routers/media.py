"""Media uploads (issue 19): declare an upload, send the bytes straight to the object store, see its state.

``POST /v1/media`` checks the declared kind, content type and size and answers a presigned POST form
for ``uploads/<media_id>`` on the object store, with that key, content type and size pinned in the
signed policy: the client sends the bytes there, never through the API. The declaration (owner, kind,
type, size) is kept in Redis so that only its owner can see it, and later attach it to a post.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.clock import now_ms
from core.ids import MAX_ID, new_post_id
from core.settings import Settings
from serving.deps import CurrentUser, RateLimited, ReadRateLimited, RedisDep, SettingsDep
from serving.errors import READ_LIMITED, ErrorBody, read_responses, responses
from serving.payloads import Accepted
from serving.registration import Registered
from serving.writes import WriteDep
from stores import media

router = APIRouter(prefix="/media", tags=["media"])
MediaPath = Annotated[int, Path(ge=1, le=MAX_ID, description="media id from POST /v1/media")]


class MediaKind(str, Enum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


CONTENT_TYPES: dict[MediaKind, tuple[str, ...]] = {
    MediaKind.IMAGE: ("image/png", "image/jpeg", "image/webp", "image/gif", "image/avif"),
    MediaKind.VIDEO: ("video/mp4", "video/webm", "video/quicktime"),
}


class MediaDeclare(BaseModel):
    """What the client is about to upload."""

    model_config = ConfigDict(extra="forbid")
    kind: MediaKind
    content_type: str = Field(max_length=100, description="one of the kind's types, e.g. image/png or video/mp4")
    size_bytes: int = Field(gt=0, description="exact size of the file; over the kind's limit is 413")

    @model_validator(mode="after")
    def _type_fits_kind(self) -> MediaDeclare:
        if self.content_type.lower() not in CONTENT_TYPES[self.kind]:
            raise ValueError(f"content_type {self.content_type!r} is not an accepted {self.kind.value} type; "
                             f"use one of {', '.join(CONTENT_TYPES[self.kind])}")
        self.content_type = self.content_type.lower()
        return self


class UploadTarget(BaseModel):
    method: str = "POST"
    url: str
    fields: dict[str, str] = Field(description="form fields to send before the file field, as given")
    file_field: str = "file"


class MediaDeclared(BaseModel):
    media_id: int
    kind: MediaKind
    content_type: str
    max_bytes: int
    expires_at: int = Field(description="epoch ms after which the upload form is refused")
    upload: UploadTarget


class VariantOut(BaseModel):
    name: str = Field(description="thumb, w480, w1080, original; poster, hls, hls-<h>p (video)")
    url: str = Field(description="public, immutable (cache forever); gone once its post is deleted")
    content_type: str
    width: int | None = None
    height: int | None = None
    size_bytes: int


class MediaState(BaseModel):
    media_id: int
    kind: MediaKind
    content_type: str
    declared_bytes: int
    state: str = Field(description="awaiting_upload, uploaded (POST .../complete next), processing, ready, "
                                   "rejected (see reason), or expired (nothing uploaded in time)")
    uploaded_bytes: int | None = None
    format: str | None = Field(None, description="what the bytes are (ready media)")
    width: int | None = None
    height: int | None = None
    duration_ms: int | None = None
    variants: list[VariantOut] | None = Field(None, description="ready media: its variants (HLS segments left out)")
    reason: str | None = Field(None, description="rejected media: not_media, kind_mismatch, corrupt, "
                                                 "too_many_pixels, too_long, too_large, missing, too_slow")
    message: str | None = Field(None, description="rejected media: what was wrong")


def limit_of(kind: MediaKind, max_image: int, max_video: int) -> int:
    return max_image if kind is MediaKind.IMAGE else max_video


@router.post("", status_code=201, response_model=MediaDeclared, dependencies=[RateLimited, Registered],
             summary="Declare an upload: answers a presigned form to send the bytes to the object store",
             responses={**responses(400, 401, 403, 413, 429), 503: {"model": ErrorBody, "description":
                        "object store or Redis unavailable, nothing declared (see Retry-After)",
                        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}}})
async def declare_media(body: MediaDeclare, user: CurrentUser, redis: RedisDep, settings: SettingsDep) -> MediaDeclared:
    cap = limit_of(body.kind, settings.media_max_image_bytes, settings.media_max_video_bytes)
    if body.size_bytes > cap:
        raise HTTPException(413, f"size_bytes {body.size_bytes} is over the {body.kind.value} limit of {cap} bytes")
    await asyncio.to_thread(media.check_reachable, settings)
    media_id = new_post_id()
    expires_at = now_ms() + settings.media_upload_ttl_s * 1000
    form = await asyncio.to_thread(media.upload_form, settings, media.upload_key(media_id), body.content_type,
                                   body.size_bytes, settings.media_upload_ttl_s)
    await media.declare(redis, media_id, user, body.kind.value, body.content_type, body.size_bytes, expires_at,
                        settings.media_declaration_ttl_s)
    return MediaDeclared(media_id=media_id, kind=body.kind, content_type=body.content_type,
                         max_bytes=body.size_bytes, expires_at=expires_at,
                         upload=UploadTarget(url=form.url, fields=form.fields))


def variants_out(settings: Settings, variants: list[dict]) -> list[VariantOut]:
    """The variants a client fetches (not the HLS segments, which the playlists name), with their URLs."""
    return [VariantOut(name=v["name"], url=media.public_url(settings, v["object_key"]), content_type=v["content_type"],
                       width=v["width"], height=v["height"], size_bytes=v["size_bytes"])
            for v in variants if not v["name"].endswith("-segment")]


@router.post("/{media_id}/complete", status_code=202, response_model=Accepted, dependencies=[RateLimited, Registered],
             summary="Hand an uploaded file to processing (MediaUploaded)",
             responses={**responses(400, 401, 403, 409, 429, 503), 404: {"model": ErrorBody, "description":
                        "no such media of the caller's"}})
async def complete_upload(media_id: MediaPath, w: WriteDep):
    found = await media.declared(w.redis, media_id)
    if found is None or found["owner"] != w.user:
        raise HTTPException(404, f"no media {media_id} of yours")
    if found.get("completed_event"):  # handed over already: the same answer, no second event
        return JSONResponse({"event_id": found["completed_event"], "media_id": media_id}, status_code=202)
    there = await asyncio.to_thread(media.uploaded, w.settings, media.upload_key(media_id))
    if there is None:
        raise HTTPException(409, f"nothing is uploaded for media {media_id} yet: send the file to the form "
                                 "POST /v1/media answered, then call this again", headers={"Retry-After": "1"})

    async def act() -> dict:
        event_id = await w.emit("MediaUploaded", media_id=media_id, owner_id=w.user, kind=found["kind"],
                                content_type=found["content_type"], object_key=media.upload_key(media_id),
                                size_bytes=there[0])
        await media.mark_completed(w.redis, media_id, event_id)
        return {"event_id": event_id, "media_id": media_id}

    return await w.once(act)


@router.get("/{media_id}", response_model=MediaState, dependencies=[ReadRateLimited],
            summary="The state of one's own upload",
            responses={**READ_LIMITED, **read_responses(401, 404, 503, e404="no such media of the caller's",
                                                        e503="object store or Redis unavailable (see Retry-After)")})
async def media_state(media_id: MediaPath, user: CurrentUser, redis: RedisDep, settings: SettingsDep) -> MediaState:
    found = await media.declared(redis, media_id)
    if found is None or found["owner"] != user:  # someone else's media is as unknown as none
        raise HTTPException(404, f"no media {media_id} of yours")
    base = {"media_id": media_id, "kind": MediaKind(found["kind"]), "content_type": found["content_type"],
            "declared_bytes": int(found["size"])}
    (done,) = await media.get_states(redis, [media_id])
    if done is not None and done["state"] == "ready":
        return MediaState(**base, state="ready", format=done["format"], width=done["width"], height=done["height"],
                          duration_ms=done["duration_ms"], variants=variants_out(settings, done["variants"]))
    if done is not None:
        return MediaState(**base, state="rejected", reason=done["reason"], message=done["message"])
    there = await asyncio.to_thread(media.uploaded, settings, media.upload_key(media_id))
    if found.get("completed_event"):
        return MediaState(**base, state="processing", uploaded_bytes=there[0] if there else None)
    state = "uploaded" if there else "expired" if now_ms() > int(found["expires_at"]) else "awaiting_upload"
    return MediaState(**base, state=state, uploaded_bytes=there[0] if there else None)
