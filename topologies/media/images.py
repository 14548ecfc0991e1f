"""Images: decode within a pixel budget, drop the metadata (EXIF location included), write the variants.

Each upload becomes a thumbnail (longest side ``thumb_px``) and one variant per configured width (never
wider than the source), each as WebP and AVIF, plus the full-size image in a format every client shows
(``original``: the source's own format for PNG and JPEG, PNG for GIF, WebP and AVIF sources). Pixels
are re-encoded from the decoded image, so nothing of the source's metadata (EXIF, XMP, ICC text
chunks) is copied; the EXIF orientation is applied to the pixels first.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

from topologies.media.logic import FALLBACK, FILE_EXT, MIME, Outcome, Rejected, Variant, fits

Image.MAX_IMAGE_PIXELS = None  # the budget is checked here, from the header, before any decoding


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int
    widths: tuple[int, ...] = (480, 1080)
    thumb_px: int = 160
    webp_quality: int = 80
    avif_quality: int = 55
    avif_speed: int = 8  # libavif 0 (slowest, smallest) .. 10


def _open(data: bytes, fmt: str, limits: ImageLimits) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt.upper()])  # reads the header only
    except (OSError, SyntaxError, ValueError) as exc:
        raise Rejected("corrupt", f"the {fmt} file cannot be read: {exc}") from None
    w, h = im.size
    frames = getattr(im, "n_frames", 1)
    if w * h > limits.max_pixels or w * h * frames > 4 * limits.max_pixels:
        raise Rejected("too_many_pixels", f"{w}x{h} pixels ({frames} frame(s)) is over the limit of "
                                          f"{limits.max_pixels:,} pixels")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise Rejected("corrupt", f"the {fmt} file is damaged or truncated: {exc}") from None
    return im


def _encode(im: Image.Image, fmt: str, limits: ImageLimits) -> bytes:
    buf = io.BytesIO()
    if fmt == "webp":
        im.save(buf, "WEBP", quality=limits.webp_quality, method=4)
    elif fmt == "avif":
        im.save(buf, "AVIF", quality=limits.avif_quality, speed=limits.avif_speed)
    elif fmt == "jpeg":
        im.convert("RGB").save(buf, "JPEG", quality=88, optimize=True)
    else:
        im.save(buf, fmt.upper(), optimize=True)
    return buf.getvalue()


def _clean(im: Image.Image) -> Image.Image:
    """The pixels only: orientation applied, alpha kept if any, no metadata carried along."""
    im = ImageOps.exif_transpose(im)
    mode = "RGBA" if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info) else "RGB"
    out = im.convert(mode)
    out.info = {}
    return out


def process_image(data: bytes, fmt: str, limits: ImageLimits) -> Outcome:
    """Validate ``data`` (``fmt`` from its magic numbers) and return its variants; :class:`Rejected` if bad."""
    with _open(data, fmt, limits) as src:
        im = _clean(src)
    variants: list[Variant] = []
    thumb = im.copy()
    thumb.thumbnail((limits.thumb_px, limits.thumb_px), Image.Resampling.LANCZOS)
    sized = [("thumb", thumb)]
    for width in limits.widths:
        size = fits(im.width, im.height, width)
        sized.append((f"w{width}", im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)))
    for name, pic in sized:
        for out in ("webp", "avif"):
            variants.append(Variant(name, f"{name}.{out}", MIME[out], pic.width, pic.height, _encode(pic, out, limits)))
    fallback = FALLBACK[fmt]
    variants.append(Variant("original", f"original.{FILE_EXT[fallback]}", MIME[fallback], im.width, im.height,
                            _encode(im, fallback, limits)))
    return Outcome(fmt, im.width, im.height, None, tuple(variants))
