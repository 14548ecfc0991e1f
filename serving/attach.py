"""Attaching uploaded media to a post (issue 19): only the uploader's, handed over, not rejected, one post each."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from serving.writes import Write
from stores import media


def _refused(i: int, kind: str, msg: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body", "media_ids", i], "type": kind, "msg": msg}])


async def media_refs(w: Write, media_ids: list[int], post_id: int) -> list[dict[str, Any]]:
    """The ``MediaRef`` records of ``media_ids`` for post ``post_id``; 422 naming ``media_ids[i]`` if one
    is unknown or someone else's (the same answer, so ids can't be probed), not handed to processing yet,
    rejected, or attached to another post. Attaching records the post in the declaration."""
    refs = []
    states = await media.get_states(w.redis, media_ids)
    _, _, token_key = w.settings.media_keys()
    for i, (mid, state) in enumerate(zip(media_ids, states, strict=True)):
        found = await media.declared(w.redis, mid)
        if found is None or found["owner"] != w.user:
            raise _refused(i, "unknown_media", f"no media {mid} of yours (declare it with POST /v1/media, or it "
                                               "expired unattached)")
        if not found.get("completed_event"):
            raise _refused(i, "media_not_uploaded", f"media {mid} is not handed to processing yet: upload it, then "
                                                    f"POST /v1/media/{mid}/complete")
        if state is not None and state["state"] == "rejected":
            raise _refused(i, "media_rejected", f"media {mid} was rejected ({state['reason']}): {state['message']}")
        if state is not None and state["state"] == "deleted":
            raise _refused(i, "unknown_media", f"no media {mid} of yours (it was deleted with its post)")
        taken = await media.attach(w.redis, mid, post_id)
        if taken != post_id:
            raise _refused(i, "media_attached", f"media {mid} is attached to post {taken} already")
        refs.append({"kind": found["kind"], "url": media.public_url(w.settings, media.variant_prefix(mid, token_key)),
                     "width": None, "height": None, "duration_ms": None, "media_id": mid})
    return refs
