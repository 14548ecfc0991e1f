"""Video: probe with ffprobe, then a poster frame and an HLS rendition ladder with ffmpeg (Debian's).

Every run is bounded (``timeout_s``, one encode thread by default, output capped at ``max_s`` of
video). A file ffprobe cannot read, without a video stream, longer than ``max_s`` or larger than the
pixel budget is rejected. The renditions (H.264 + AAC, 4 s segments, VOD playlists) are one ffmpeg
run that decodes the source once; the master playlist is written here, with relative URIs, so the
whole ladder is served from one prefix.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from topologies.media.logic import Outcome, Rejected, Variant, ladder

SEGMENT_S = 4
BITRATE_KBPS = {240: 400, 360: 700, 480: 1000, 720: 2500, 1080: 4500}


class ToolMissing(RuntimeError):
    """ffmpeg/ffprobe is not installed (an operator error: the worker crashes and says so)."""


@dataclass(frozen=True)
class VideoLimits:
    max_s: float
    max_pixels: int
    heights: tuple[int, ...] = (240, 480)
    timeout_s: float = 90.0
    threads: int = 1


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found; install Debian's ffmpeg (make bootstrap does: apt-get install ffmpeg)")
    return path


def _run(args: list[str], limits: VideoLimits, what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        done = subprocess.run(args, capture_output=True, timeout=limits.timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise Rejected("too_slow", f"{what} did not finish within {limits.timeout_s:g} s") from None
    return done


def probe(path: Path, limits: VideoLimits) -> dict[str, Any]:
    """ffprobe's view of ``path``: its first video stream and the duration; :class:`Rejected` if unreadable."""
    done = _run([_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
                 str(path)], limits, "probing the video")
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip().splitlines()
        raise Rejected("corrupt", f"the video cannot be read: {msg[-1] if msg else 'ffprobe failed'}")
    info = json.loads(done.stdout or b"{}")
    video = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not video:
        raise Rejected("corrupt", "the file has no video stream")
    duration = float(info.get("format", {}).get("duration") or video[0].get("duration") or 0)
    if duration <= 0:
        raise Rejected("corrupt", "the video has no duration")
    if duration > limits.max_s:
        raise Rejected("too_long", f"the video is {duration:.1f} s long; the limit is {limits.max_s:g} s")
    w, h = int(video[0].get("width") or 0), int(video[0].get("height") or 0)
    if w <= 0 or h <= 0:
        raise Rejected("corrupt", "the video stream has no frame size")
    if w * h > limits.max_pixels:
        raise Rejected("too_many_pixels", f"{w}x{h} frames are over the limit of {limits.max_pixels:,} pixels")
    has_audio = any(s.get("codec_type") == "audio" for s in info.get("streams", []))
    return {"width": w, "height": h, "duration_s": duration, "audio": has_audio}


def _encode_args(src: Path, out: Path, heights: list[int], info: dict[str, Any], limits: VideoLimits) -> list[str]:
    args = [_tool("ffmpeg"), "-v", "error", "-nostdin", "-y", "-threads", str(limits.threads), "-i", str(src),
            "-t", f"{limits.max_s:g}", "-map_metadata", "-1"]
    # poster: one frame from a second in (or the middle of a shorter video), as JPEG
    at = min(1.0, info["duration_s"] / 2)
    args += ["-map", "0:v:0", "-ss", f"{at:.3f}", "-frames:v", "1", "-q:v", "4", str(out / "poster.jpg")]
    for h in heights:
        rate = BITRATE_KBPS.get(h, max(200, h * 2))
        args += ["-map", "0:v:0", *(["-map", "0:a:0"] if info["audio"] else []),
                 "-vf", f"scale=-2:{h}", "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main",
                 "-b:v", f"{rate}k", "-maxrate", f"{rate * 3 // 2}k", "-bufsize", f"{rate * 2}k",
                 "-g", str(SEGMENT_S * 25), "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-threads", str(limits.threads),
                 *(["-c:a", "aac", "-b:a", "96k", "-ac", "2"] if info["audio"] else []),
                 "-f", "hls", "-hls_time", str(SEGMENT_S), "-hls_playlist_type", "vod",
                 "-hls_segment_filename", str(out / f"{h}p_%03d.ts"), str(out / f"{h}p.m3u8")]
    return args


def _master(heights: list[int], sizes: dict[int, tuple[int, int]]) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3"]
    for h in heights:
        w, hh = sizes[h]
        bw = BITRATE_KBPS.get(h, max(200, h * 2)) * 1000 + 96_000
        lines += [f'#EXT-X-STREAM-INF:BANDWIDTH={bw},RESOLUTION={w}x{hh},CODECS="avc1.4d401e,mp4a.40.2"',
                  f"{h}p.m3u8"]
    return ("\n".join(lines) + "\n").encode()


def process_video(path: Path, fmt: str, limits: VideoLimits) -> Outcome:
    """Validate the video at ``path`` and return its poster and HLS objects; :class:`Rejected` if bad."""
    info = probe(path, limits)
    heights = ladder(info["height"], limits.heights)
    with tempfile.TemporaryDirectory(prefix="feedstream-hls-") as tmp:
        out = Path(tmp)
        done = _run(_encode_args(path, out, heights, info, limits), limits, "encoding the video")
        if done.returncode != 0 or not (out / "poster.jpg").exists():
            msg = done.stderr.decode(errors="replace").strip().splitlines()
            raise Rejected("corrupt", f"the video cannot be decoded: {msg[-1] if msg else 'ffmpeg failed'}")
        sizes = {h: (max(2, round(info["width"] * h / info["height"] / 2) * 2), h) for h in heights}
        variants = [Variant("poster", "poster.jpg", "image/jpeg", info["width"], info["height"],
                            (out / "poster.jpg").read_bytes()),
                    Variant("hls", "master.m3u8", "application/vnd.apple.mpegurl", None, None, _master(heights, sizes))]
        for h in heights:
            w, hh = sizes[h]
            variants.append(Variant(f"hls-{h}p", f"{h}p.m3u8", "application/vnd.apple.mpegurl", w, hh,
                                    (out / f"{h}p.m3u8").read_bytes()))
            for seg in sorted(out.glob(f"{h}p_*.ts")):
                variants.append(Variant(f"hls-{h}p-segment", seg.name, "video/mp2t", w, hh, seg.read_bytes()))
    return Outcome(fmt, info["width"], info["height"], round(info["duration_s"] * 1000), tuple(variants))
