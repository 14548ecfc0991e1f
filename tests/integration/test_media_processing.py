"""The media topology on the real stack (issue 19, third step): MinIO, Kafka, Redis, Pillow, ffmpeg.

Upload through the API's presigned form, hand it over with ``POST /v1/media/{id}/complete``, and the
``feedstream topology run media`` worker validates the real bytes and writes the variants: they are
fetched anonymously from their public URLs and checked for format, dimensions and stripped EXIF; the
HLS ladder is walked from its master playlist. Bad files are rejected with reasons, a record naming
another object is dead-lettered with its offset, and a redelivery does no work twice.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support.api import TopicTail, api_settings, bearer, new_user, running_app
from support.wait import wait_until

from core.events import new_event
from core.settings import Settings
from ops.workers import workers
from stores import media as store
from stores import redis as redis_store
from streams.admin import apply_topics
from streams.catalog import DEAD_LETTERS, MEDIA_RESULTS
from streams.producer import EventProducer
from topologies.faust_runtime import SourceRecord
from topologies.media.app import Engines, process_upload

pytestmark = pytest.mark.integration
GPS = 0x8825


@dataclass
class Env:
    s: Settings
    api: TestClient
    results: TopicTail

    def upload(self, user: str, kind: str, content_type: str, body: bytes) -> int:
        r = self.api.post("/v1/media", json={"kind": kind, "content_type": content_type, "size_bytes": len(body)},
                          headers=bearer(self.s, user))
        assert r.status_code == 201, r.text
        target = r.json()["upload"]
        sent = httpx.post(target["url"], data=target["fields"], files={"file": ("f", body, content_type)}, timeout=30)
        assert sent.status_code == 204, sent.text
        media_id = r.json()["media_id"]
        done = self.api.post(f"/v1/media/{media_id}/complete", headers=bearer(self.s, user))
        assert done.status_code == 202 and done.json()["media_id"] == media_id, done.text
        return media_id

    def outcome(self, user: str, media_id: int, timeout_s: float = 120) -> dict[str, Any]:
        def final() -> dict[str, Any] | None:
            got = self.api.get(f"/v1/media/{media_id}", headers=bearer(self.s, user)).json()
            return got if got["state"] in ("ready", "rejected") else None
        return wait_until(final, timeout_s=timeout_s, interval_s=0.3)


def _jpeg_with_gps(w: int = 1600, h: int = 1000) -> bytes:
    im = Image.new("RGB", (w, h), (20, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the variants come out h x w
    exif[GPS] = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 1.0)}
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif, quality=90)
    return buf.getvalue()


def _png(w: int = 300, h: int = 200) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (w, h), (255, 0, 0, 128)).save(buf, "PNG")
    return buf.getvalue()


def _mp4(tmp: Path, seconds: int = 3) -> bytes:
    out = tmp / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", str(seconds), "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out)], check=True, timeout=120)
    return out.read_bytes()


@pytest.fixture(scope="module")
def env(media_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    apply_topics(media_stack)
    s = api_settings(media_stack, api_rate_user_burst=1000)
    with workers(s, ("media",), log_dir=tmp_path_factory.mktemp("workers"),
                 topology_group_suffix=f"-itest-{uuid.uuid4().hex[:6]}") as procs, running_app(s) as api:
        e = Env(s, api, None)  # type: ignore[arg-type]
        probe = new_user(s)
        first = e.upload(probe, "IMAGE", "image/png", _png(20, 20))
        assert all(p.poll() is None for p in procs)
        assert e.outcome(probe, first, timeout_s=180)["state"] == "ready"
        e.results = TopicTail(s, MEDIA_RESULTS.name)  # the topic has its leaders now
        yield e
        e.results.close()


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=30)  # anonymous: variants are public capability URLs


def test_an_image_gets_webp_and_avif_variants_without_its_exif_location(env: Env) -> None:
    user = new_user(env.s)
    media_id = env.upload(user, "IMAGE", "image/jpeg", _jpeg_with_gps())
    got = env.outcome(user, media_id)
    assert got["state"] == "ready", got
    assert (got["format"], got["width"], got["height"]) == ("jpeg", 1000, 1600)  # orientation applied
    by_file = {v["url"].rsplit("/", 1)[1]: v for v in got["variants"]}
    assert set(by_file) == {"thumb.webp", "thumb.avif", "w480.webp", "w480.avif", "w1080.webp", "w1080.avif",
                            "original.jpg"}
    expect = {"thumb": (100, 160), "w480": (480, 768), "w1080": (1000, 1600), "original": (1000, 1600)}
    for name, v in by_file.items():
        res = _get(v["url"])
        assert res.status_code == 200, (name, res.status_code)
        assert res.headers["content-type"] == v["content_type"]
        assert "immutable" in res.headers.get("cache-control", "")
        pic = Image.open(io.BytesIO(res.content))
        assert pic.format == {"webp": "WEBP", "avif": "AVIF", "jpg": "JPEG"}[name.rsplit(".", 1)[1]]
        assert pic.size == expect[name.split(".")[0]] == (v["width"], v["height"]), name
        assert GPS not in pic.getexif() and not pic.getexif().get_ifd(GPS), name
    # the upload itself is not public, and uploads expire by a lifecycle rule
    rules = store.client(env.s).get_bucket_lifecycle(env.s.media_bucket).rules
    assert [(r.rule_filter.prefix, r.expiration.days) for r in rules] == [("uploads/", env.s.media_upload_keep_days)]
    assert _get(f"{env.s.media_public_base}/{store.upload_key(media_id)}").status_code == 403
    # and another user can't see the media's state
    assert env.api.get(f"/v1/media/{media_id}", headers=bearer(env.s, new_user(env.s))).status_code == 404


def test_a_short_mp4_gets_a_poster_and_an_hls_ladder(env: Env, tmp_path: Path) -> None:
    user = new_user(env.s)
    media_id = env.upload(user, "VIDEO", "video/mp4", _mp4(tmp_path))
    got = env.outcome(user, media_id, timeout_s=180)
    assert got["state"] == "ready", got
    assert (got["format"], got["width"], got["height"]) == ("mp4", 640, 360)
    assert 2900 <= got["duration_ms"] <= 3100
    by_name = {v["name"]: v for v in got["variants"]}
    poster = _get(by_name["poster"]["url"])
    assert poster.status_code == 200 and Image.open(io.BytesIO(poster.content)).size == (640, 360)
    master = _get(by_name["hls"]["url"])
    assert master.status_code == 200 and master.text.startswith("#EXTM3U")
    renditions = [line for line in master.text.splitlines() if line and not line.startswith("#")]
    assert renditions == ["240p.m3u8", "360p.m3u8"]
    base = by_name["hls"]["url"].rsplit("/", 1)[0]
    for rendition, height in zip(renditions, (240, 360), strict=True):
        playlist = _get(f"{base}/{rendition}")
        assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
        segments = [line for line in playlist.text.splitlines() if line and not line.startswith("#")]
        assert segments
        seg = _get(f"{base}/{segments[0]}")
        assert seg.status_code == 200
        seg_file = tmp_path / f"{height}.ts"
        seg_file.write_bytes(seg.content)
        probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-print_format", "json", "-show_streams",
                                           str(seg_file)], capture_output=True, check=True, timeout=60).stdout)
        video = next(st for st in probe["streams"] if st["codec_type"] == "video")
        assert (video["codec_name"], video["height"]) == ("h264", height)


@pytest.mark.parametrize(("kind", "ctype", "body", "reason"), [
    ("IMAGE", "image/png", b"just some text, renamed to photo.png\n" * 4, "not_media"),
    ("IMAGE", "image/png", _png()[:60] + b"\x00" * 200, "corrupt"),
    ("VIDEO", "video/mp4", _png(), "kind_mismatch"),
    ("VIDEO", "video/mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 300, "corrupt"),
])
def test_bad_files_are_rejected_with_a_reason(env: Env, kind: str, ctype: str, body: bytes, reason: str) -> None:
    user = new_user(env.s)
    media_id = env.upload(user, kind, ctype, body)
    got = env.outcome(user, media_id)
    assert got["state"] == "rejected" and got["reason"] == reason, got
    assert got["message"] and got.get("variants") is None
    rejected = wait_until(lambda: [d for d in env.results.drain(0.5) if d.value["media_id"] == media_id])
    assert rejected[0].name == "MediaRejected" and rejected[0].value["reason"] == reason


def test_a_pixel_bomb_is_rejected_from_its_header(env: Env) -> None:
    user = new_user(env.s)
    buf = io.BytesIO()
    Image.new("1", (20_000, 10_000)).save(buf, "PNG")  # 200 M pixels in a few KB
    media_id = env.upload(user, "IMAGE", "image/png", buf.getvalue())
    got = env.outcome(user, media_id)
    assert got["state"] == "rejected" and got["reason"] == "too_many_pixels", got


def test_complete_needs_the_upload_and_the_owner(env: Env) -> None:
    owner, other = new_user(env.s), new_user(env.s)
    r = env.api.post("/v1/media", json={"kind": "IMAGE", "content_type": "image/png", "size_bytes": 100},
                     headers=bearer(env.s, owner))
    media_id = r.json()["media_id"]
    early = env.api.post(f"/v1/media/{media_id}/complete", headers=bearer(env.s, owner))
    assert early.status_code == 409 and "upload" in early.json()["detail"]
    assert env.api.post(f"/v1/media/{media_id}/complete", headers=bearer(env.s, other)).status_code == 404
    assert env.api.post("/v1/media/12345/complete", headers=bearer(env.s, owner)).status_code == 404


def test_redelivery_does_no_work_twice_and_a_foreign_object_is_dead_lettered(env: Env) -> None:
    user = new_user(env.s)
    media_id = env.upload(user, "IMAGE", "image/png", _png())
    assert env.outcome(user, media_id)["state"] == "ready"
    again = SourceRecord("media.v1", 0, 0, None, "MediaUploaded",
                         {"media_id": media_id, "owner_id": user, "kind": "IMAGE", "content_type": "image/png",
                          "object_key": store.upload_key(media_id), "size_bytes": 1}, 0)
    assert process_upload(Engines(env.s), again) is None  # its outcome is stored: nothing redone
    # a MediaUploaded naming someone else's object is poison: dead-lettered with its offset
    letters = TopicTail(env.s, DEAD_LETTERS.name)
    victim = env.upload(user, "IMAGE", "image/png", _png(50, 50))
    event = new_event(user, media_id=victim + 1, owner_id=user, kind="IMAGE", content_type="image/png",
                      object_key=store.upload_key(victim), size_bytes=10)
    with EventProducer(env.s) as producer:
        report = producer.send("MediaUploaded", event)
    found = wait_until(lambda: [d for d in letters.drain(0.5) if d.value["source_topic"] == "media.v1"
                                and d.value["source_offset"] == report.offset], timeout_s=60)
    assert found[0].value["error_type"] == "PoisonRecord"
    assert redis_store.client(env.s).get(store.k_state(victim + 1)) is None
    letters.close()


def test_a_lost_redis_gets_the_outcomes_back_from_the_log(env: Env) -> None:
    from streams.serde import Serde
    from topologies.media.app import rebuild_state, reload_lost_state

    user = new_user(env.s)
    good = env.upload(user, "IMAGE", "image/png", _png(40, 40))
    bad = env.upload(user, "IMAGE", "image/png", b"not an image at all\n" * 3)
    assert env.outcome(user, good)["state"] == "ready" and env.outcome(user, bad)["state"] == "rejected"
    r = redis_store.client(env.s)
    eng = Engines(env.s)
    assert reload_lost_state(eng, Serde(env.s.registry_url)) is None  # loaded: nothing to do
    lost = [*r.scan_iter("mediastate:*"), *r.scan_iter("postmedia:*"), store.LOADED]
    r.delete(*lost)  # as if Redis lost its data
    assert env.api.get(f"/v1/media/{good}", headers=bearer(env.s, user)).json()["state"] == "processing"
    assert rebuild_state(eng, Serde(env.s.registry_url)) >= 2
    assert env.outcome(user, good, timeout_s=5)["state"] == "ready"
    assert env.outcome(user, bad, timeout_s=5)["reason"] == "not_media"
    assert store.loaded(r)
