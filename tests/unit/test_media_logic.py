"""The media topology's pure rules and the image pipeline (issue 19): no engines."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from stores.media import variant_prefix
from topologies.media.images import ImageLimits, process_image
from topologies.media.logic import Rejected, classify, fits, ladder, result_event_id, sniff

pytestmark = pytest.mark.unit


def _img(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, (10, 20, 30) if mode == "RGB" else 1).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize(("fmt", "expect"), [("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("WEBP", "webp"),
                                             ("AVIF", "avif")])
def test_sniff_reads_the_magic_numbers_of_every_image_we_take(fmt: str, expect: str) -> None:
    assert sniff(_img(fmt)[:64]) == expect


@pytest.mark.parametrize(("head", "expect"), [
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", "mp4"),
    (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00qt  ", "mov"),
    (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", "webm"),
    (b"<html><body>not a picture</body></html>", None),
    (b"", None),
])
def test_sniff_tells_videos_and_refuses_the_rest(head: bytes, expect: str | None) -> None:
    assert sniff(head) == expect


def test_classify_trusts_the_bytes_not_the_declared_kind() -> None:
    assert classify(_img("PNG")[:64], "IMAGE") == "png"
    with pytest.raises(Rejected) as bad:
        classify(_img("PNG")[:64], "VIDEO")
    assert bad.value.reason == "kind_mismatch" and "IMAGE" in bad.value.message
    with pytest.raises(Rejected) as text:
        classify(b"hello, world", "IMAGE")
    assert text.value.reason == "not_media"


def test_sizes_never_upscale_and_the_ladder_tops_out_at_the_source() -> None:
    assert fits(1600, 1000, 480) == (480, 300)
    assert fits(300, 200, 480) == (300, 200)
    assert ladder(360, (240, 480)) == [240, 360]
    assert ladder(1080, (240, 480)) == [240, 480]
    assert ladder(100, (240, 480)) == [100]
    assert ladder(481, (240, 480)) == [240, 480]


def test_tokens_and_result_ids_are_stable_and_distinct() -> None:
    assert variant_prefix(1, b"k") == variant_prefix(1, b"k") != variant_prefix(2, b"k") != variant_prefix(2, b"o")
    assert variant_prefix(7, b"k").startswith("variants/7/") and len(variant_prefix(7, b"k").split("/")[2]) == 20
    assert result_event_id(5, 0, 10) == result_event_id(5, 0, 10) != result_event_id(5, 0, 11)


def test_an_image_with_gps_exif_comes_out_clean_rotated_and_in_every_variant() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    buf = io.BytesIO()
    Image.new("RGB", (800, 500), (200, 10, 10)).save(buf, "JPEG", exif=exif)
    out = process_image(buf.getvalue(), "jpeg", ImageLimits(10_000_000, (480, 1080), 160))
    assert (out.width, out.height) == (500, 800)
    names = [(v.name, v.file) for v in out.variants]
    assert names == [("thumb", "thumb.webp"), ("thumb", "thumb.avif"), ("w480", "w480.webp"), ("w480", "w480.avif"),
                     ("w1080", "w1080.webp"), ("w1080", "w1080.avif"), ("original", "original.jpg")]
    for v in out.variants:
        pic = Image.open(io.BytesIO(v.data))
        assert pic.size == (v.width, v.height)
        assert not pic.getexif().get_ifd(0x8825) and 0x0112 not in pic.getexif()


def test_alpha_survives_and_a_gif_falls_back_to_png() -> None:
    out = process_image(_img("PNG", mode="RGBA"), "png", ImageLimits(10_000_000))
    assert Image.open(io.BytesIO(out.variants[0].data)).mode == "RGBA"
    gif = process_image(_img("GIF", mode="P"), "gif", ImageLimits(10_000_000))
    assert gif.variants[-1].file == "original.png"


def test_too_many_pixels_and_truncated_files_are_rejected() -> None:
    with pytest.raises(Rejected) as big:
        process_image(_img("PNG", (4000, 3000), "1"), "png", ImageLimits(1_000_000))
    assert big.value.reason == "too_many_pixels"
    with pytest.raises(Rejected) as cut:
        process_image(_img("PNG", (300, 300))[:200], "png", ImageLimits(10_000_000))
    assert cut.value.reason == "corrupt"


def test_production_refuses_the_placeholder_media_keys() -> None:
    from pydantic import SecretStr

    from core.settings import PlaceholderSecret, Settings

    dev = Settings(env="development")
    assert dev.media_keys()[1] == "feedstream-dev-only"
    with pytest.raises(PlaceholderSecret, match="FEEDSTREAM_MEDIA"):
        Settings(env="production").media_keys()
    real = Settings(env="production", media_secret_key=SecretStr("s" * 32), media_variant_token_key=SecretStr("t" * 32))
    assert real.media_keys()[2] == b"t" * 32


def test_hydrate_sets_states_hides_rejected_from_others_and_drops_deleted() -> None:
    from serving.readers.media import hydrate, media_ids

    ready = {"state": "ready", "width": 10, "height": 5, "duration_ms": None,
             "variants": [{"name": "thumb", "object_key": "variants/1/t/thumb.webp", "content_type": "image/webp",
                           "width": 10, "height": 5, "size_bytes": 9},
                          {"name": "hls-240p-segment", "object_key": "variants/1/t/240p_000.ts",
                           "content_type": "video/mp2t", "width": 1, "height": 1, "size_bytes": 1}]}
    rejected = {"state": "rejected", "reason": "corrupt", "message": "bad"}

    def items() -> list[dict]:
        return [{"post_id": 9, "author_id": "ann", "media": [
            {"kind": "IMAGE", "url": "https://x/y.jpg", "media_id": None},
            {"kind": "IMAGE", "url": "p/", "media_id": 1}, {"kind": "IMAGE", "url": "p/", "media_id": 2},
            {"kind": "IMAGE", "url": "p/", "media_id": 3}, {"kind": "IMAGE", "url": "p/", "media_id": 4}]}]

    states = {1: ready, 2: rejected, 3: None, 4: {"state": "deleted"}}
    assert media_ids(items()) == [1, 2, 3, 4]
    other = items()
    hydrate(other, states, "bob", "http://cdn/")
    got = other[0]["media"]
    assert [m.get("state") for m in got] == [None, "ready", "processing"]
    assert got[1]["variants"] == [{"name": "thumb", "url": "http://cdn/variants/1/t/thumb.webp",
                                   "content_type": "image/webp", "width": 10, "height": 5}]
    own = items()
    hydrate(own, states, "ann", "http://cdn")
    assert [(m.get("media_id"), m.get("state")) for m in own[0]["media"]] == [
        (None, None), (1, "ready"), (2, "rejected"), (3, "processing")]
    assert own[0]["media"][2]["reason"] == "corrupt"
    down = items()
    hydrate(down, None, "bob", "http://cdn")
    assert [m.get("state") for m in down[0]["media"]][1:] == ["unavailable"] * 4
