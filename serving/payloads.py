"""Request and response bodies of the write API (kept apart from the Avro event records)."""

from __future__ import annotations

import re
from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.ids import MAX_ID

USER_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
HANDLE_PATTERN = r"^[A-Za-z0-9_]{1,30}$"
URL_PATTERN = r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[^\s]*)?$"
MAX_TEXT = 5000
MAX_COMMENT = 2000
MAX_MEDIA = 10
MAX_LINKS = 10

UserId = Annotated[str, StringConstraints(pattern=USER_ID_PATTERN)]
Url = Annotated[str, StringConstraints(max_length=2048, pattern=URL_PATTERN)]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=80)]
Bio = Annotated[str, StringConstraints(max_length=500)]
EntityId = Annotated[int, Field(ge=1, le=MAX_ID)]

_HASHTAG = re.compile(r"(?<![\w#])#(\w{1,64})")
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_]{1,30})")


def extract_tags(text: str) -> tuple[list[str], list[str]]:
    """Return the distinct lower-cased hashtags and mentioned handles of ``text``, in order."""
    hashtags = list(dict.fromkeys(m.lower() for m in _HASHTAG.findall(text)))
    mentions = list(dict.fromkeys(m.lower() for m in _MENTION.findall(text)))
    return hashtags, mentions


class Strict(BaseModel):
    """Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Visibility(str, Enum):
    PUBLIC = "PUBLIC"
    FOLLOWERS = "FOLLOWERS"
    FRIENDS = "FRIENDS"


class MediaKind(str, Enum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


class ReactionKind(str, Enum):
    LIKE = "LIKE"
    LOVE = "LOVE"
    HAHA = "HAHA"
    WOW = "WOW"
    SAD = "SAD"
    ANGRY = "ANGRY"


class MediaIn(Strict):
    """A reference to an uploaded image or video."""

    kind: MediaKind
    url: Url
    width: int | None = Field(None, ge=1, le=16384)
    height: int | None = Field(None, ge=1, le=16384)
    duration_ms: int | None = Field(None, ge=1, le=24 * 3600 * 1000)

    @model_validator(mode="after")
    def _duration_is_for_video(self) -> MediaIn:
        if self.kind is MediaKind.IMAGE and self.duration_ms is not None:
            raise ValueError("duration_ms is only allowed for VIDEO media")
        return self


class RegisterIn(Strict):
    """Sign-up; ``user_id`` must be the token's subject."""

    user_id: UserId
    handle: Annotated[str, StringConstraints(pattern=HANDLE_PATTERN)]
    display_name: DisplayName
    bio: Bio | None = None
    avatar_url: Url | None = None


class ProfileIn(Strict):
    """Profile changes; at least one field."""

    display_name: DisplayName | None = None
    bio: Bio | None = None
    avatar_url: Url | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProfileIn:
        if self.display_name is None and self.bio is None and self.avatar_url is None:
            raise ValueError("give at least one of display_name, bio, avatar_url")
        return self


class PostIn(Strict):
    """A post's content, for create and edit; hashtags and mentions are taken from ``text``."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
    media: list[MediaIn] = Field(default_factory=list, max_length=MAX_MEDIA)
    media_ids: list[EntityId] = Field(
        default_factory=list, max_length=MAX_MEDIA,
        description="media uploaded with POST /v1/media and handed over with POST /v1/media/{id}/complete; "
                    "only the uploader may attach them")
    links: list[Url] = Field(default_factory=list, max_length=MAX_LINKS)
    visibility: Visibility = Visibility.PUBLIC

    @model_validator(mode="after")
    def _media_fit(self) -> PostIn:
        if len(self.media) + len(self.media_ids) > MAX_MEDIA:
            raise ValueError(f"at most {MAX_MEDIA} media in all (media and media_ids)")
        if len(set(self.media_ids)) != len(self.media_ids):
            raise ValueError("media_ids names the same media twice")
        return self

    def event_fields(self) -> dict[str, Any]:
        """The content fields of PostCreated/PostEdited."""
        hashtags, mentions = extract_tags(self.text)
        return {
            "text": self.text, "links": list(self.links), "hashtags": hashtags, "mentions": mentions,
            "media": [{**m.model_dump(), "kind": m.kind.value, "media_id": None} for m in self.media],
            "visibility": self.visibility.value,
        }


class CommentIn(Strict):
    """A comment, optionally replying to another comment on the same post."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMMENT)]
    parent_comment_id: EntityId | None = None


class ShareIn(Strict):
    """A share, with an optional comment."""

    comment: Annotated[str, StringConstraints(max_length=MAX_COMMENT)] | None = None


class Accepted(BaseModel):
    """202: the write is on the log; ``event_id`` names its event."""

    event_id: str
    user_id: str | None = None
    post_id: int | None = None
    comment_id: int | None = None
    media_id: int | None = None
    consistency_token: str | None = None  # send back as X-Consistency-Token: reads wait for this write
