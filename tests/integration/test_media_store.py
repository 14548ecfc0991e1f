"""The media object store is a real MinIO started by the local stack (issue 19, first step).

`feedstream local up` builds MinIO's server once from the Go module proxy (scripts/fetch_minio.sh),
starts it on loopback and health-checks it; here a client uploads straight to it through a presigned
POST policy, and the policy's pinned size and content type are enforced by the store itself.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from core.settings import Settings
from ops.local import stack as local_stack
from stores import media

pytestmark = pytest.mark.integration
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 64  # a PNG signature (the bytes are not checked here)


def _post(form: media.UploadForm, body: bytes) -> httpx.Response:
    return httpx.post(form.url, data=form.fields, files={"file": ("upload", body, form.fields["Content-Type"])},
                      timeout=30)


def test_the_stack_reports_minio_healthy(media_stack: Settings) -> None:
    (row,) = local_stack.status(media_stack, ["minio"])
    assert row.healthy and row.pid is not None and row.port == media_stack.minio_port
    assert httpx.get(f"{media_stack.media_url}/minio/health/live", timeout=5).status_code == 200


def test_a_presigned_post_uploads_and_a_presigned_get_reads(media_stack: Settings) -> None:
    media.ensure_bucket(media_stack)
    media.ensure_bucket(media_stack)  # idempotent
    key = media.upload_key(uuid.uuid4().hex)
    form = media.upload_form(media_stack, key, "image/png", max_bytes=1024, expires_s=60)
    assert _post(form, PNG).status_code == 204
    got = httpx.get(media.download_url(media_stack, key, expires_s=60), timeout=30)
    assert got.status_code == 200 and got.content == PNG
    stat = media.client(media_stack).stat_object(media_stack.media_bucket, key)
    assert stat.size == len(PNG) and stat.content_type == "image/png"


def test_the_store_enforces_the_pinned_size_type_and_key(media_stack: Settings) -> None:
    media.ensure_bucket(media_stack)
    key = media.upload_key(uuid.uuid4().hex)
    form = media.upload_form(media_stack, key, "image/png", max_bytes=32, expires_s=60)
    too_big = _post(form, PNG)
    assert too_big.status_code == 400 and b"EntityTooLarge" in too_big.content
    wrong_type = _post(media.UploadForm(form.url, {**form.fields, "Content-Type": "text/html"}, 60), PNG[:16])
    assert wrong_type.status_code == 403
    other_key = _post(media.UploadForm(form.url, {**form.fields, "key": media.upload_key("someone-else")}, 60),
                      PNG[:16])
    assert other_key.status_code == 403
    assert _post(form, PNG[:16]).status_code == 204  # within the policy
