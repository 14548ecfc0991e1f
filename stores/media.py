"""The media object store (S3 API: the local MinIO, or any S3 by ``FEEDSTREAM_MEDIA_URL``).

Owns the media bucket and its key layout:

- ``uploads/<media_id>``: the bytes a client uploaded straight to the store with a presigned POST
  policy (:func:`upload_form`: content type and size range pinned, expiring); the API never streams
  them itself;
- ``variants/<media_id>/<name>``: what processing writes from them (thumbnails, widths, HLS).

The client is MinIO's Python SDK (``minio``), which speaks plain S3 v4 signatures: it is synchronous,
so async callers run it in a thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from minio import Minio
from minio.datatypes import PostPolicy

from core.settings import Settings


def upload_key(media_id: int | str) -> str:
    return f"uploads/{media_id}"


def variant_key(media_id: int | str, name: str) -> str:
    return f"variants/{media_id}/{name}"


def client(s: Settings) -> Minio:
    """An S3 client for ``s.media_url`` with the platform's keys."""
    url = urlsplit(s.media_url)
    return Minio(url.netloc, access_key=s.media_access_key, secret_key=s.media_secret_key.get_secret_value(),
                 secure=url.scheme == "https", region=s.media_region)


def ensure_bucket(s: Settings, store: Minio | None = None) -> None:
    """Create the media bucket if it does not exist (idempotent)."""
    store = store or client(s)
    if not store.bucket_exists(s.media_bucket):
        store.make_bucket(s.media_bucket)


@dataclass(frozen=True)
class UploadForm:
    """Where and how a client uploads the bytes: a multipart POST of ``fields`` plus ``file`` to ``url``."""

    url: str
    fields: dict[str, str]
    expires_s: int


def upload_form(s: Settings, key: str, content_type: str, max_bytes: int, expires_s: int,
                store: Minio | None = None) -> UploadForm:
    """A presigned POST policy for exactly ``key``, with its content type and size range pinned."""
    store = store or client(s)

    policy = PostPolicy(s.media_bucket, datetime.now(UTC) + timedelta(seconds=expires_s))
    policy.add_equals_condition("key", key)
    policy.add_equals_condition("Content-Type", content_type)
    policy.add_content_length_range_condition(1, max_bytes)
    fields: dict[str, Any] = store.presigned_post_policy(policy)
    return UploadForm(f"{s.media_url.rstrip('/')}/{s.media_bucket}",
                      {"key": key, "Content-Type": content_type, **fields}, expires_s)


def download_url(s: Settings, key: str, expires_s: int = 3600, store: Minio | None = None) -> str:
    """A presigned GET of ``key``."""
    store = store or client(s)
    return store.presigned_get_object(s.media_bucket, key, expires=timedelta(seconds=expires_s))
