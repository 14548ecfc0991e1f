"""Pure rules of the media topology: what the bytes are, which variants an upload gets, where they go.

The bytes decide, never the declared content type: :func:`sniff` reads the magic numbers, and an
upload whose bytes are not an image or video we serve, or not the kind its uploader declared, is
rejected with a reason (:class:`Rejected`), which becomes a ``MediaRejected`` record.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

IMAGE_FORMATS = ("png", "jpeg", "gif", "webp", "avif")
VIDEO_FORMATS = ("mp4", "mov", "webm")
KIND_OF = {**{f: "IMAGE" for f in IMAGE_FORMATS}, **{f: "VIDEO" for f in VIDEO_FORMATS}}
MIME = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
        "avif": "image/avif", "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm"}
FILE_EXT = {"png": "png", "jpeg": "jpg", "gif": "gif", "webp": "webp", "avif": "avif"}
FALLBACK = {"png": "png", "jpeg": "jpeg", "gif": "png", "webp": "png", "avif": "png"}  # a format every client shows
SNIFF_BYTES = 64
RESULT_NAMESPACE = uuid.UUID("6d1f4c2e-8a3b-5b7e-9f10-2c4d6e8fa0b1")


class Rejected(Exception):
    """The upload's bytes are refused: ``reason`` is machine-readable, the message is for the uploader."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes (magic numbers), or None if it is none we serve."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: Matroska/WebM
        return "webm"
    if head[4:8] == b"ftyp":  # ISO base media file: the major brand, then compatible brands
        brands = {head[i:i + 4] for i in range(8, min(len(head), 8 + int.from_bytes(head[:4], "big")) - 3, 4)}
        if head[8:12] in (b"avif", b"avis") or (b"avif" in brands and head[8:12] == b"mif1"):
            return "avif"
        return "mov" if head[8:12] == b"qt  " else "mp4"
    return None


def classify(head: bytes, declared_kind: str) -> str:
    """The format of an upload declared as ``declared_kind``; :class:`Rejected` if it is not one."""
    fmt = sniff(head)
    if fmt is None:
        raise Rejected("not_media", "the file is not an image or video we accept (its first bytes are no "
                                    f"{', '.join(IMAGE_FORMATS + VIDEO_FORMATS)} signature)")
    if KIND_OF[fmt] != declared_kind:
        raise Rejected("kind_mismatch", f"declared as {declared_kind} but the bytes are {fmt} "
                                        f"({KIND_OF[fmt]}); declare it as {KIND_OF[fmt]}")
    return fmt


@dataclass(frozen=True)
class Variant:
    """One object to write: its name, file name under the media's prefix, MIME type, size and bytes."""

    name: str
    file: str
    content_type: str
    width: int | None
    height: int | None
    data: bytes

    def record(self, prefix: str) -> dict[str, Any]:
        """Its ``MediaVariant`` record (without the bytes)."""
        return {"name": self.name, "object_key": prefix + self.file, "content_type": self.content_type,
                "width": self.width, "height": self.height, "size_bytes": len(self.data)}


@dataclass(frozen=True)
class Outcome:
    """What processing found: the detected format, the source's dimensions, and the variants."""

    format: str
    width: int
    height: int
    duration_ms: int | None
    variants: tuple[Variant, ...]


def result_event_id(media_id: int, partition: int, offset: int) -> str:
    """The result's event id, the same on every redelivery of its MediaUploaded (consumers dedupe)."""
    return str(uuid.uuid5(RESULT_NAMESPACE, f"{media_id}@{partition}:{offset}"))


def source_fields(topic: str, partition: int, offset: int) -> dict[str, Any]:
    return {"source_topic": topic, "source_partition": partition, "source_offset": offset}


def processed(up: dict[str, Any], out: Outcome, prefix: str, *, at_ms: int, src: dict[str, Any]) -> dict[str, Any]:
    """The ``MediaProcessed`` record of upload ``up``."""
    return {"event_id": result_event_id(up["media_id"], src["source_partition"], src["source_offset"]),
            "occurred_at": at_ms, "actor_id": "media", "media_id": up["media_id"], "owner_id": up["owner_id"],
            "kind": up["kind"], "format": out.format, "width": out.width, "height": out.height,
            "duration_ms": out.duration_ms, "variants": [v.record(prefix) for v in out.variants], **src}


def rejected(up: dict[str, Any], exc: Rejected, *, at_ms: int, src: dict[str, Any]) -> dict[str, Any]:
    """The ``MediaRejected`` record of upload ``up``."""
    return {"event_id": result_event_id(up["media_id"], src["source_partition"], src["source_offset"]),
            "occurred_at": at_ms, "actor_id": "media", "media_id": up["media_id"], "owner_id": up["owner_id"],
            "kind": up["kind"], "reason": exc.reason, "message": exc.message, **src}


def fits(width: int, height: int, target_w: int) -> tuple[int, int]:
    """``width x height`` scaled to ``target_w`` wide (never up), height rounded, at least 1."""
    if width <= target_w:
        return width, height
    return target_w, max(1, round(height * target_w / width))


def ladder(src_height: int, heights: tuple[int, ...]) -> list[int]:
    """The HLS renditions of a video ``src_height`` tall: the ladder's heights up to it, plus the
    source's own height (even) on top if it falls short of the ladder's top rung."""
    own = max(2, src_height - src_height % 2)
    kept = {h for h in heights if h <= src_height}
    if own < max(heights):
        kept.add(own)
    return sorted(kept)
