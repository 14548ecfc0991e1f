"""Media benchmark (issue 19): images per worker CPU-second by size, video seconds per worker CPU-second,
and upload->ready p50/p99, each against ceilings measured in the same run on the same machine.

Needs the local stack (``feedstream local up``: Kafka, the registry, Redis, MinIO); starts its own
``feedstream topology run media`` worker (a fresh consumer group from the topic's end), so no other
media worker should run. Loopback only; bounded by ``--images``, ``--videos`` and ``--timeout``.

Ceilings, same run:
- **raw Pillow**: the same decode, resizes and WebP/AVIF/fallback encodes in this process
  (``topologies.media.images.process_image``), no I/O: images per CPU-second, per size;
- **raw PUT**: the variant objects of one image PUT to the store one by one: objects/s;
- **raw ffmpeg**: the same probe, poster and HLS ladder in this process
  (``topologies.media.video.process_video``): video seconds per CPU-second (ffmpeg's CPU included).

Through the topology, per size: the uploads are PUT to ``uploads/<id>``, then their ``MediaUploaded``
events produced at once (a backlog); the worker drains them; worker CPU (its own and its ffmpeg
children's) over the drain gives images (or video seconds) per worker CPU-second, and each event's
produce -> outcome-in-Redis time gives upload->ready (the upload itself excluded).

    python -m bench.media --images 8 --sizes 640x480,1920x1080,4000x3000 --videos 3 --video-seconds 5 \
        --latency-samples 10
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from bench.report import RESULTS_DIR, latency_ms
from core.events import new_event
from core.ids import new_post_id
from core.settings import REPO_ROOT, Settings, get_settings
from ops.workers import worker_env
from stores import media as store
from stores import redis as redis_store
from streams.producer import EventProducer
from topologies.media.images import ImageLimits, process_image
from topologies.media.video import VideoLimits, process_video


def photo(w: int, h: int, seed: int) -> bytes:
    """A camera-like JPEG: smooth gradients plus noise, so the encoders have real work."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([(x / w) * 255, (y / h) * 255, ((x + y) / (w + h)) * 255], axis=-1)
    pixels = np.clip(base + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def clip(path: Path, seconds: float, seed: int) -> bytes:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25",
                    "-f", "lavfi", "-i", f"sine=frequency={300 + seed * 40}", "-t", f"{seconds:g}", "-c:v", "libx264",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)], check=True, timeout=300)
    return path.read_bytes()


def _cpu_self_and_children() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def raw_images(images: list[bytes], limits: ImageLimits) -> dict[str, Any]:
    process_image(images[0], "jpeg", limits)  # warm: the encoders' first calls load and set up
    t0 = _cpu_self_and_children()
    for data in images:
        process_image(data, "jpeg", limits)
    cpu = _cpu_self_and_children() - t0
    return {"images": len(images), "cpu_s": round(cpu, 3), "images_per_cpu_s": len(images) / cpu}


def raw_videos(paths: list[Path], seconds: float, limits: VideoLimits) -> dict[str, Any]:
    t0 = _cpu_self_and_children()
    for p in paths:
        process_video(p, "mp4", limits)
    cpu = _cpu_self_and_children() - t0
    return {"videos": len(paths), "video_s": seconds * len(paths), "cpu_s": round(cpu, 3),
            "video_s_per_cpu_s": seconds * len(paths) / cpu}


def raw_put(s: Settings, data: bytes, limits: ImageLimits) -> dict[str, Any]:
    variants = process_image(data, "jpeg", limits).variants
    client = store.client(s)
    store.ensure_bucket(s, client)
    prefix = f"bench/{uuid.uuid4().hex[:8]}/"
    objs = [(prefix + v.file, v.content_type, v.data) for v in variants] * 4
    t0 = time.perf_counter()
    for obj in objs:
        store.put_objects(s, [obj], client)
    wall = time.perf_counter() - t0
    store.delete_prefix(s, prefix, client)
    return {"objects": len(objs), "objects_per_s": len(objs) / wall,
            "mean_bytes": sum(len(o[2]) for o in objs) // len(objs)}


class Worker:
    """One media worker on a fresh group, its CPU read from /proc (ffmpeg children included)."""

    def __init__(self, s: Settings) -> None:
        env = worker_env(s, topology_group_suffix=f"-bench-{uuid.uuid4().hex[:6]}", topology_offset_reset="latest",
                         worker_metrics_port="0")
        self.proc = subprocess.Popen([sys.executable, "-m", "feedstream.cli", "topology", "run", "media"], env=env,
                                     cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system + t.children_user + t.children_system

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def drain(s: Settings, worker: Worker, kind: str, ctype: str, blobs: list[bytes], timeout_s: float,
          echo: Callable[[str], None]) -> dict[str, Any]:
    """PUT ``blobs`` as uploads, produce their MediaUploaded at once, wait for every outcome."""
    client, r = store.client(s), redis_store.client(s)
    ids = [new_post_id() for _ in blobs]
    for mid, data in zip(ids, blobs, strict=True):
        client.put_object(s.media_bucket, store.upload_key(mid), io.BytesIO(data), len(data), content_type=ctype)
    cpu0, sent = worker.cpu(), {}
    with EventProducer(s) as producer:
        for mid, data in zip(ids, blobs, strict=True):
            producer.submit("MediaUploaded", new_event("bench", media_id=mid, owner_id="bench", kind=kind,
                                                       content_type=ctype, object_key=store.upload_key(mid),
                                                       size_bytes=len(data)))
            sent[mid] = time.perf_counter()
        producer.flush()
    done: dict[int, float] = {}
    states: dict[int, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(done) < len(ids) and time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            raise RuntimeError("the media worker exited; run it by hand to see why")
        todo = [m for m in ids if m not in done]
        for mid, raw in zip(todo, r.mget([store.k_state(m) for m in todo]), strict=True):
            if raw:
                done[mid] = time.perf_counter()
                states[mid] = json.loads(raw)["state"]
        time.sleep(0.02)
    cpu = worker.cpu() - cpu0
    wall = max(done.values(), default=time.perf_counter()) - min(sent.values())
    for mid in ids:
        store.delete_media(s, r, mid, client)
    lat = [done[m] - sent[m] for m in done]
    bad = [m for m in done if states[m] != "ready"]
    echo(f"  {kind.lower()} x{len(ids)}: {len(done)} done in {wall:.1f} s, worker CPU {cpu:.1f} s"
         + (f", {len(bad)} not ready" if bad else ""))
    return {"n": len(ids), "done": len(done), "not_ready": len(bad), "wall_s": round(wall, 2),
            "worker_cpu_s": round(cpu, 3), "per_worker_cpu_s": len(done) / cpu if cpu else 0.0,
            "upload_to_ready_ms": latency_ms(lat)}


def wait_joined(s: Settings, worker: Worker, timeout_s: float) -> None:
    """Until the worker (reading from the end) processes a probe upload."""
    deadline, data = time.monotonic() + timeout_s, photo(32, 24, 0)
    while time.monotonic() < deadline:
        got = drain(s, worker, "IMAGE", "image/jpeg", [data], 5.0, lambda _m: None)
        if got["done"]:
            return
    raise RuntimeError(f"the media worker did not process a probe within {timeout_s:g} s")


def run(s: Settings, *, images: int, sizes: list[tuple[int, int]], videos: int, video_seconds: float,
        timeout_s: float, latency_samples: int = 10, echo: Callable[[str], None] = print) -> dict[str, Any]:
    limits = ImageLimits(s.media_max_pixels, s.media_image_widths, s.media_thumb_px)
    vlimits = VideoLimits(s.media_max_video_s, s.media_max_pixels, s.media_video_heights, s.media_ffmpeg_timeout_s,
                          s.media_ffmpeg_threads)
    result: dict[str, Any] = {"load_before": os.getloadavg(), "images": {}, "command": " ".join(sys.argv)}
    echo("generating inputs")
    pics = {f"{w}x{h}": [photo(w, h, i) for i in range(images)] for w, h in sizes}
    tmp = Path(tempfile.mkdtemp(prefix="feedstream-bench-media-"))
    clips = [tmp / f"clip{i}.mp4" for i in range(videos)]
    blobs = [clip(p, video_seconds, i) for i, p in enumerate(clips)]
    echo("ceilings: raw Pillow, raw PUT, raw ffmpeg")
    raw = {k: raw_images(v, limits) for k, v in pics.items()}
    result["raw_put"] = raw_put(s, next(iter(pics.values()))[0], limits)
    result["raw_ffmpeg"] = raw_videos(clips, video_seconds, vlimits) if videos else None
    echo("starting a media worker")
    worker = Worker(s)
    try:
        wait_joined(s, worker, 120)
        for key, data in pics.items():
            got = drain(s, worker, "IMAGE", "image/jpeg", data, timeout_s, echo)
            got["raw_pillow_images_per_cpu_s"] = raw[key]["images_per_cpu_s"]
            got["ratio_to_raw_pillow"] = got["per_worker_cpu_s"] / raw[key]["images_per_cpu_s"]
            got["mean_bytes"] = sum(map(len, data)) // len(data)
            result["images"][key] = got
        lone = [drain(s, worker, "IMAGE", "image/jpeg", [photo(1920, 1080, 100 + i)], timeout_s, lambda _m: None)
                for i in range(latency_samples)]
        lat = [x["upload_to_ready_ms"]["p50"] for x in lone if x["upload_to_ready_ms"]]
        result["lone_1920x1080"] = {"n": len(lat), "p50_ms": float(np.percentile(lat, 50)) if lat else None,
                                    "p99_ms": float(np.percentile(lat, 99)) if lat else None}
        if videos:
            got = drain(s, worker, "VIDEO", "video/mp4", blobs, timeout_s, echo)
            got["video_s_per_worker_cpu_s"] = got["per_worker_cpu_s"] * video_seconds
            got["ratio_to_raw_ffmpeg"] = got["video_s_per_worker_cpu_s"] / result["raw_ffmpeg"]["video_s_per_cpu_s"]
            result["video"] = got
    finally:
        worker.stop()
    result["load_after"] = os.getloadavg()
    return result


def summary(result: dict[str, Any]) -> list[str]:
    lines = ["| input | per worker CPU-second | raw ceiling per CPU-second | ratio | upload->ready p50 / p99 |",
             "|---|---|---|---|---|"]
    for key, got in result["images"].items():
        lat = got["upload_to_ready_ms"]
        lines.append(f"| image {key} JPEG ({got['mean_bytes'] // 1024} KiB), {got['n']} | "
                     f"{got['per_worker_cpu_s']:.2f} images | {got['raw_pillow_images_per_cpu_s']:.2f} (raw Pillow) | "
                     f"{got['ratio_to_raw_pillow']:.2f} | {lat['p50']:.0f} / {lat['p99']:.0f} ms |")
    if result.get("video"):
        v, lat = result["video"], result["video"]["upload_to_ready_ms"]
        lines.append(f"| video 640x360 H.264, {v['n']} | {v['video_s_per_worker_cpu_s']:.2f} video-s | "
                     f"{result['raw_ffmpeg']['video_s_per_cpu_s']:.2f} (raw ffmpeg) | {v['ratio_to_raw_ffmpeg']:.2f} | "
                     f"{lat['p50']:.0f} / {lat['p99']:.0f} ms |")
    lone = result.get("lone_1920x1080") or {}
    if lone.get("n"):
        lines.append(f"\none 1920x1080 upload at a time (no backlog), upload->ready p50 {lone['p50_ms']:.0f} ms, "
                     f"p99 {lone['p99_ms']:.0f} ms over {lone['n']}")
    put = result["raw_put"]
    lines.append(f"\nraw PUT ceiling: {put['objects_per_s']:.0f} objects/s ({put['mean_bytes'] // 1024} KiB mean); "
                 f"load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}")
    return lines


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8, help="images per size")
    ap.add_argument("--sizes", default="640x480,1920x1080,4000x3000", help="comma-separated WxH")
    ap.add_argument("--videos", type=int, default=3, help="video clips (640x360)")
    ap.add_argument("--video-seconds", type=float, default=5.0, help="length of each clip")
    ap.add_argument("--timeout", type=float, default=600.0, help="bound of each drain")
    ap.add_argument("--latency-samples", type=int, default=10, help="lone 1920x1080 uploads, one at a time")
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    return ap


def main(argv: list[str] | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    a = parser().parse_args(argv)
    sizes = [(int(w), int(h)) for w, h in (x.split("x") for x in a.sizes.split(","))]
    result = run(get_settings(), images=a.images, sizes=sizes, videos=a.videos, video_seconds=a.video_seconds,
                 timeout_s=a.timeout, latency_samples=a.latency_samples, echo=echo)
    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"media-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    for line in summary(result):
        echo(line)
    echo(f"json: {path}")
    return result


if __name__ == "__main__":
    main()
