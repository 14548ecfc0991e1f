"""Posts with uploaded media end to end (issue 19): upload -> process -> post -> feed -> delete.

Graph, fan-out, users and media workers run as subprocesses on their own keyspace, Redis database
and consumer groups; the API runs in-process; MinIO, Kafka, Cassandra and Redis are the session's.
A PNG and a generated MP4 are uploaded through presigned forms, attached to a post, and read back
from a follower's feed with their variant and HLS URLs, which resolve to the right formats and
sizes; someone else's media can't be attached; a rejected upload is refused as an attachment; a
deleted post's objects are gone from the store.
"""

from __future__ import annotations

import io
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from support.api import ActingClient, api_settings, uid
from support.wait import wait_until

from core.events import new_event
from core.settings import Settings, isolated
from ops.workers import workers
from serving.app import create_app
from stores import graph
from stores import media as store
from stores import redis as redis_store
from streams.admin import apply_all
from streams.producer import EventProducer

pytestmark = pytest.mark.timeout(900)


def png(w: int = 900, h: int = 600) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (30, 160, 90)).save(buf, "PNG")
    return buf.getvalue()


def mp4(tmp: Path) -> bytes:
    out = tmp / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                    "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out)], check=True, timeout=120)
    return out.read_bytes()


class Api(ActingClient):
    def upload(self, user: str, kind: str, ctype: str, body: bytes, *, complete: bool = True) -> int:
        declared = self.ok(self.c.post("/v1/media", json={"kind": kind, "content_type": ctype,
                                                          "size_bytes": len(body)}, headers=self.h(user)), 201)
        form = declared["upload"]
        assert httpx.post(form["url"], data=form["fields"], files={"file": ("f", body, ctype)},
                          timeout=30).status_code == 204
        if complete:
            self.ok(self.c.post(f"/v1/media/{declared['media_id']}/complete", headers=self.h(user)))
        return declared["media_id"]

    def media_state(self, user: str, media_id: int) -> str:
        return self.ok(self.c.get(f"/v1/media/{media_id}", headers=self.h(user)), 200)["state"]

    def feed_item(self, user: str, post_id: int) -> dict[str, Any] | None:
        items = self.ok(self.c.get(f"/v1/users/{user}/feed", params={"limit": 50}, headers=self.h(user)), 200)["items"]
        return next((it for it in items if it["post_id"] == post_id), None)


@pytest.fixture(scope="module")
def api(media_stack: Settings, tmp_path_factory: pytest.TempPathFactory):
    apply_all(media_stack, echo=lambda *_: None)
    s = isolated(media_stack, "fs_e2e_media", 14)
    redis_store.client(s).flushdb()
    settings = api_settings(s, api_rate_limit_enabled=False)
    logs = tmp_path_factory.mktemp("workers")
    with workers(s, ("graph", "fanout", "users", "media"), log_dir=logs,
                 topology_group_suffix=f"-e2e-{uuid.uuid4().hex[:8]}", topology_offset_reset="latest") as procs, \
            TestClient(create_app(settings)) as client:
        a = Api(client, settings, s)
        probe = a.register(uid("probe"))
        sent: list[float] = [0.0]
        posted: list[int] = []

        def joined() -> bool:  # until fan-out and the media worker (reading from latest) both work
            assert all(p.poll() is None for p in procs), f"a worker exited; see {logs}"
            if time.monotonic() - sent[0] > 5:
                mid = a.upload(probe, "IMAGE", "image/png", png(40, 30))
                posted.append(a.ok(a.c.post("/v1/posts", json={"text": "probe", "media_ids": [mid]},
                                            headers=a.h(probe)))["post_id"])
                sent[0] = time.monotonic()
            return any(a.feed_item(probe, p) and (a.feed_item(probe, p) or {})["media"][0]["state"] == "ready"
                       for p in posted)

        wait_until(joined, timeout_s=240, interval_s=0.5)
        yield a


def test_a_post_with_an_image_and_a_video_shows_their_variants_in_a_followers_feed(api: Api, tmp_path: Path) -> None:
    author, reader = api.register(uid("a")), api.register(uid("r"))
    api.ok(api.c.put(f"/v1/users/{reader}/following/{author}", headers=api.h(reader)))
    wait_until(lambda: api.r.sismember(graph.k_followers(author), reader), timeout_s=60)
    image, video = api.upload(author, "IMAGE", "image/png", png()), api.upload(author, "VIDEO", "video/mp4", mp4(tmp_path))
    post_id = api.ok(api.c.post("/v1/posts", json={"text": "holiday #pics", "media_ids": [image, video]},
                                headers=api.h(author)))["post_id"]
    item = wait_until(lambda: (it := api.feed_item(reader, post_id)) and all(m["state"] == "ready" for m in it["media"])
                      and it, timeout_s=180)
    pic, clip = item["media"]
    assert (pic["media_id"], pic["kind"], pic["width"], pic["height"]) == (image, "IMAGE", 900, 600)
    assert (clip["media_id"], clip["kind"], clip["width"], clip["height"]) == (video, "VIDEO", 320, 240)
    urls = {v["name"] + ":" + v["url"].rsplit(".", 1)[1]: v for v in pic["variants"]}
    assert set(urls) == {"thumb:webp", "thumb:avif", "w480:webp", "w480:avif", "w1080:webp", "w1080:avif", "original:png"}
    for key, v in urls.items():
        got = httpx.get(v["url"], timeout=30)
        assert got.status_code == 200, key
        decoded = Image.open(io.BytesIO(got.content))
        assert decoded.format == key.split(":")[1].upper().replace("JPG", "JPEG") and decoded.size == (v["width"], v["height"])
    assert urls["w480:avif"]["width"] == 480 and urls["w1080:webp"]["width"] == 900  # never upscaled
    hls = next(v for v in clip["variants"] if v["name"] == "hls")
    master = httpx.get(hls["url"], timeout=30).text
    first = next(line for line in master.splitlines() if line and not line.startswith("#"))
    playlist = httpx.get(hls["url"].rsplit("/", 1)[0] + "/" + first, timeout=30)
    assert playlist.status_code == 200 and "#EXT-X-ENDLIST" in playlist.text
    # the post's own page shows the same, and the author's list too
    own = api.ok(api.c.get(f"/v1/posts/{post_id}", headers=api.h(reader)), 200)
    assert [m["state"] for m in own["media"]] == ["ready", "ready"]
    # deleting the post deletes its objects
    api.ok(api.c.delete(f"/v1/posts/{post_id}", headers=api.h(author)))
    wait_until(lambda: httpx.get(urls["thumb:webp"]["url"], timeout=30).status_code in (403, 404), timeout_s=60)
    wait_until(lambda: httpx.get(hls["url"], timeout=30).status_code in (403, 404), timeout_s=60)
    s3 = store.client(api.settings)
    for mid in (image, video):
        assert not list(s3.list_objects(api.settings.media_bucket, prefix=f"variants/{mid}/", recursive=True))
        assert store.uploaded(api.settings, store.upload_key(mid)) is None


def test_media_cant_be_attached_across_users_or_when_rejected_or_unfinished(api: Api) -> None:
    owner, thief = api.register(uid("o")), api.register(uid("t"))
    mine = api.upload(owner, "IMAGE", "image/png", png(64, 64))
    stolen = api.c.post("/v1/posts", json={"text": "not mine", "media_ids": [mine]}, headers=api.h(thief))
    assert stolen.status_code == 422 and stolen.json()["detail"][0]["loc"] == ["body", "media_ids", 0]
    assert api.c.post("/v1/posts", json={"text": "x", "media_ids": [123456789]},
                      headers=api.h(owner)).status_code == 422
    # declared but never uploaded: refused with what to do
    pending = api.ok(api.c.post("/v1/media", json={"kind": "IMAGE", "content_type": "image/png", "size_bytes": 10},
                                headers=api.h(owner)), 201)["media_id"]
    early = api.c.post("/v1/posts", json={"text": "x", "media_ids": [pending]}, headers=api.h(owner))
    assert early.status_code == 422 and "complete" in early.json()["detail"][0]["msg"]
    # a text file renamed .png is rejected by the worker; attaching it afterwards is refused with the reason
    fake = api.upload(owner, "IMAGE", "image/png", b"this is not a picture\n" * 10)
    wait_until(lambda: api.media_state(owner, fake) == "rejected", timeout_s=120)
    refused = api.c.post("/v1/posts", json={"text": "x", "media_ids": [fake]}, headers=api.h(owner))
    assert refused.status_code == 422 and "not_media" in refused.json()["detail"][0]["msg"]
    # one post per media
    first = api.ok(api.c.post("/v1/posts", json={"text": "one", "media_ids": [mine]}, headers=api.h(owner)))
    again = api.c.post("/v1/posts", json={"text": "two", "media_ids": [mine]}, headers=api.h(owner))
    assert again.status_code == 422 and str(first["post_id"]) in again.json()["detail"][0]["msg"]


def test_a_post_whose_media_is_rejected_after_posting_hides_it_from_others_and_tells_the_author(api: Api) -> None:
    author, reader = api.register(uid("a")), api.register(uid("r"))
    api.ok(api.c.put(f"/v1/users/{reader}/following/{author}", headers=api.h(reader)))
    wait_until(lambda: api.r.sismember(graph.k_followers(author), reader), timeout_s=60)
    good = api.upload(author, "IMAGE", "image/png", png(100, 80))
    body = png(100, 80)[:70] + b"\x00" * 50
    broken = api.upload(author, "IMAGE", "image/png", body, complete=False)
    # handed over as POST .../complete does, but its MediaUploaded is produced only after the post is
    # accepted, so the rejection surely lands after posting
    api.r.hset(store.k_media(broken), "completed_event", "e2e")
    post_id = api.ok(api.c.post("/v1/posts", json={"text": "two pics", "media_ids": [good, broken]},
                                headers=api.h(author)))["post_id"]
    with EventProducer(api.settings) as producer:
        producer.send("MediaUploaded", new_event(author, media_id=broken, owner_id=author, kind="IMAGE",
                                                 content_type="image/png", object_key=store.upload_key(broken),
                                                 size_bytes=len(body)))
    wait_until(lambda: api.media_state(author, broken) == "rejected" and api.media_state(author, good) == "ready",
               timeout_s=120)
    item = wait_until(lambda: api.feed_item(reader, post_id), timeout_s=60)
    assert [m["media_id"] for m in item["media"]] == [good]  # the rejected one never appears to others
    own = api.ok(api.c.get(f"/v1/posts/{post_id}", headers=api.h(author)), 200)
    assert [(m["media_id"], m["state"]) for m in own["media"]] == [(good, "ready"), (broken, "rejected")]
    assert own["media"][1]["reason"] == "corrupt"
