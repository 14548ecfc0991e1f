"""Media worker: media.v1 (MediaUploaded) -> variants in the object store, media-results.v1, state in Redis;
posts.v1 -> a post's uploaded media are deleted with it.

Per upload: read the object, let its bytes decide what it is (:func:`topologies.media.logic.classify`),
then :mod:`topologies.media.images` (Pillow: EXIF dropped, thumbnail and widths in WebP and AVIF, a
fallback) or :mod:`topologies.media.video` (ffprobe/ffmpeg: poster and HLS ladder) write its variants
under ``variants/<media_id>/<token>/``. The outcome is emitted as ``MediaProcessed`` or
``MediaRejected`` (an event id derived from the source offset, so a redelivery emits the same
record) and, once Kafka has it, stored in Redis (``mediastate:<id>``) for the API. A media whose
outcome is already stored is skipped, so redelivery does no work twice; variant keys are fixed per
media, so a half-done earlier attempt is overwritten, never duplicated. A record that names another
object than its own upload is poison (dead-lettered with its offset); a store that fails crashes the
worker with the record unacked.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust

from core.clock import now_ms
from core.settings import Settings
from stores import media as store
from stores import redis as redis_store
from streams.catalog import DER, MEDIA, MEDIA_RESULTS, POSTS
from streams.errors import PoisonRecord
from streams.producer import event_type_headers
from streams.serde import Serde
from topologies.faust_runtime import (
    SourceRecord,
    bounded,
    catalog_topic,
    create_faust_app,
    in_thread,
    make_serde,
    register_agent,
    register_batch_agent,
    run_worker,
)
from topologies.media.images import ImageLimits, process_image
from topologies.media.logic import (
    SNIFF_BYTES,
    Outcome,
    Rejected,
    classify,
    processed,
    rejected,
    source_fields,
)
from topologies.media.video import VideoLimits, process_video
from topologies.replay import ReplayStats, read_log, register_state_check, reload_if_lost

log = logging.getLogger(__name__)
HEADERS = {name: event_type_headers(DER + name) for name in ("MediaProcessed", "MediaRejected")}


@dataclass
class Engines:
    """The worker's clients (lazily opened) and limits."""

    settings: Settings
    _s3: Any = field(default=None, repr=False)
    _r: Any = field(default=None, repr=False)

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = store.client(self.settings)
            store.ensure_public_variants(self.settings, self._s3)
        return self._s3

    @property
    def r(self) -> Any:
        if self._r is None:
            self._r = redis_store.client(self.settings)
        return self._r

    @property
    def images(self) -> ImageLimits:
        s = self.settings
        return ImageLimits(s.media_max_pixels, s.media_image_widths, s.media_thumb_px)

    @property
    def videos(self) -> VideoLimits:
        s = self.settings
        return VideoLimits(s.media_max_video_s, s.media_max_pixels, s.media_video_heights, s.media_ffmpeg_timeout_s,
                           s.media_ffmpeg_threads)


def check_upload(rec: SourceRecord) -> None:
    """A MediaUploaded that names its own upload object; anything else is poison."""
    if rec.name != "MediaUploaded":
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")
    v = rec.value
    if v["object_key"] != store.upload_key(v["media_id"]):
        raise PoisonRecord(f"MediaUploaded {v['media_id']} names object {v['object_key']!r}, "
                           f"not its upload {store.upload_key(v['media_id'])!r}")


def examine(eng: Engines, up: dict[str, Any]) -> Outcome:
    """Read the upload and process it; :class:`Rejected` if its bytes are refused."""
    s, key, kind = eng.settings, up["object_key"], up["kind"]
    limit = s.media_max_image_bytes if kind == "IMAGE" else s.media_max_video_bytes
    if kind == "IMAGE":
        data = store.read_object(s, key, limit + 1, eng.s3)
        if data is None:
            raise Rejected("missing", "the upload is gone (it expired or was deleted) before it was processed")
        if len(data) > limit:
            raise Rejected("too_large", f"the file is over the IMAGE limit of {limit} bytes")
        return process_image(data, classify(data[:SNIFF_BYTES], kind), eng.images)
    with tempfile.TemporaryDirectory(prefix="feedstream-media-") as tmp:
        path = Path(tmp) / "upload"
        if not store.download(s, key, str(path), eng.s3):
            raise Rejected("missing", "the upload is gone (it expired or was deleted) before it was processed")
        if path.stat().st_size > limit:
            raise Rejected("too_large", f"the file is over the VIDEO limit of {limit} bytes")
        with path.open("rb") as f:
            fmt = classify(f.read(SNIFF_BYTES), kind)
        return process_video(path, fmt, eng.videos)


def process_upload(eng: Engines, rec: SourceRecord) -> tuple[str, dict[str, Any]] | None:
    """The result record of one upload (variants written first), or None if it was processed before."""
    up = rec.value
    if store.get_state_sync(eng.r, up["media_id"]) is not None:
        return None
    src = source_fields(rec.topic, rec.partition, rec.offset)
    try:
        out = examine(eng, up)
    except Rejected as exc:
        log.info("media %s rejected: %s (%s)", up["media_id"], exc.reason, exc.message)
        return "MediaRejected", rejected(up, exc, at_ms=now_ms(), src=src)
    prefix = store.variant_prefix(up["media_id"], eng.settings.media_keys()[2])
    store.put_objects(eng.settings, [(prefix + v.file, v.content_type, v.data) for v in out.variants], eng.s3)
    return "MediaProcessed", processed(up, out, prefix, at_ms=now_ms(), src=src)


def record_outcome(eng: Engines, name: str, value: dict[str, Any]) -> None:
    """Store the outcome for the API, unless the media was deleted with its post meanwhile: then what
    processing wrote is removed again."""
    media_id = value["media_id"]
    recorded = store.set_state(eng.r, media_id, store.state_of(name, value))
    if not recorded and (store.get_state_sync(eng.r, media_id) or {}).get("state") == "deleted":
        store.delete_media(eng.settings, eng.r, media_id, eng.s3)


def uploaded_media(value: dict[str, Any]) -> list[int]:
    return [m["media_id"] for m in value.get("media") or () if m.get("media_id")]


POST_RECORDS = ("PostCreated", "PostEdited", "PostDeleted")


def check_post(rec: SourceRecord) -> None:
    if rec.name not in POST_RECORDS:
        raise PoisonRecord(f"unexpected record {rec.name} on {rec.topic}")


def apply_posts(eng: Engines, recs: list[SourceRecord]) -> None:
    """Keep each post's uploaded media; delete their objects with the post (or when an edit drops them).

    Only the post's author changes it: an edit or delete by anyone else is ignored here (the fan-out
    topology dead-letters it). Posts without uploaded media cost one Redis read for a delete, nothing else.
    """
    for rec in recs:
        v = rec.value
        pid, author = v["post_id"], v["author_id"]
        if rec.name == "PostCreated":
            if uploaded_media(v) and store.post_media(eng.r, pid)[0] is None:
                store.set_post_media(eng.r, pid, author, uploaded_media(v))
            continue
        owner, ids = store.post_media(eng.r, pid)
        if owner is None or owner != author:
            continue
        keep = uploaded_media(v) if rec.name == "PostEdited" else []
        for mid in ids:
            if mid not in keep:
                removed = store.delete_media(eng.settings, eng.r, mid, eng.s3)
                log.info("media %s of post %s deleted (%d objects)", mid, pid, removed)
        store.set_post_media(eng.r, pid, author, keep)


def rebuild_state(eng: Engines, serde: Serde) -> int:
    """Reload the media state into a Redis that lost it, from the log; return the records applied.

    Outcomes come back from ``media-results.v1`` (compacted: the latest per media) and each post's
    media from ``posts.v1`` (kept forever), merged in timestamp order; a ``PostDeleted`` deletes its
    media again (idempotent) and marks them deleted, which an outcome read later does not overwrite
    (:func:`stores.media.set_state` keeps an existing state). Then ``media:loaded`` is set.
    """
    applied = 0
    for rec in read_log(eng.settings, (MEDIA_RESULTS.name, POSTS.name), serde, ReplayStats()):
        if rec.topic == MEDIA_RESULTS.name and rec.name in HEADERS:
            store.set_state(eng.r, rec.value["media_id"], store.state_of(rec.name, rec.value))
        elif rec.topic == POSTS.name and rec.name in POST_RECORDS:
            apply_posts(eng, [rec])
        else:
            continue
        applied += 1
    store.mark_loaded(eng.r)
    return applied


def reload_lost_state(eng: Engines, serde: Serde) -> int | None:
    """Rebuild the state if this Redis lost it (``media:loaded`` absent); the records applied, or None."""
    return reload_if_lost("media", lambda: store.loaded(eng.r), lambda: rebuild_state(eng, serde))


def create_app(settings: Settings, *, app_id: str | None = None, serde: Serde | None = None,
               broker: str | None = None, engines: Engines | None = None) -> faust.App:
    """Build the media Faust app: one agent on media.v1, one upload at a time per worker."""
    app = create_faust_app(settings, "media", app_id=app_id, broker=broker)
    serde = serde or make_serde(settings)
    eng = engines or Engines(settings)
    results = catalog_topic(app, MEDIA_RESULTS, settings)

    async def on_upload(rec: SourceRecord) -> None:
        check_upload(rec)
        out = await in_thread(app, process_upload, eng, rec)
        if out is None:
            return
        name, value = out
        data = serde.encode(name, value, MEDIA_RESULTS.name)
        sent = await results.send(key=str(value["media_id"]).encode(), value=data, headers=HEADERS[name])
        await bounded(app, sent, f"the {name} of media {value['media_id']}")
        await in_thread(app, record_outcome, eng, name, value)

    async def on_posts(recs: list[SourceRecord]) -> None:
        await in_thread(app, apply_posts, eng, recs)

    register_state_check(app, "media", settings.media_reload_check_s, lambda: reload_lost_state(eng, serde))

    register_agent(app, catalog_topic(app, MEDIA, settings), on_upload, serde=serde, name="media-uploads")
    register_batch_agent(app, catalog_topic(app, POSTS, settings), on_posts, serde=serde, name="media-posts",
                         validate=check_post, within_s=0.05)
    return app


def run(settings: Settings) -> None:
    """Run the media worker until interrupted."""
    run_worker(create_app(settings))
