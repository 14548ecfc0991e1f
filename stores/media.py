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

import urllib3
from minio import Minio
from minio.datatypes import PostPolicy
from minio.error import S3Error

from core.settings import Settings


def upload_key(media_id: int | str) -> str:
    return f"uploads/{media_id}"


def variant_key(media_id: int | str, name: str) -> str:
    return f"variants/{media_id}/{name}"


def client(s: Settings) -> Minio:
    """An S3 client for ``s.media_url`` with the platform's keys; a store that does not answer fails
    within seconds (2 s to connect, one retry), not after urllib3's default retries."""
    url = urlsplit(s.media_url)
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=30.0), maxsize=16,
                               retries=urllib3.Retry(total=1, backoff_factor=0.1,
                                                     status_forcelist=[500, 502, 503, 504]))
    return Minio(url.netloc, access_key=s.media_access_key, secret_key=s.media_secret_key.get_secret_value(),
                 secure=url.scheme == "https", region=s.media_region, http_client=http)


def ensure_bucket(s: Settings, store: Minio | None = None) -> None:
    """Create the media bucket if it does not exist (idempotent)."""
    store = store or client(s)
    if not store.bucket_exists(s.media_bucket):
        try:
            store.make_bucket(s.media_bucket)
        except S3Error as exc:  # created by another process meanwhile
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


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


class MediaStoreUnavailable(RuntimeError):
    """The object store did not answer (the API turns it into 503 with Retry-After)."""


def check_reachable(s: Settings, store: Minio | None = None) -> None:
    """One cheap round trip to the store (HEAD of the bucket; a missing bucket is created); raises
    :class:`MediaStoreUnavailable` if the store does not answer."""
    store = store or client(s)
    try:
        ensure_bucket(s, store)
    except Exception as exc:  # urllib3/S3 errors of a store that is down or refusing
        raise MediaStoreUnavailable(f"object store at {s.media_url}: {exc}") from exc


def uploaded(s: Settings, key: str, store: Minio | None = None) -> tuple[int, str] | None:
    """``(size, content type)`` of an uploaded object, or None if nothing is there yet."""
    try:
        stat = (store or client(s)).stat_object(s.media_bucket, key)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return None
        raise MediaStoreUnavailable(f"object store at {s.media_url}: {exc}") from exc
    except Exception as exc:
        raise MediaStoreUnavailable(f"object store at {s.media_url}: {exc}") from exc
    return stat.size or 0, stat.content_type or ""


# ---------------------------------------------------------------- declarations (Redis)
def k_media(media_id: int | str) -> str:
    """Hash of a declared upload: owner, kind, content type, declared size, expiry (ms)."""
    return f"media:{media_id}"


async def declare(redis: Any, media_id: int, owner: str, kind: str, content_type: str, size: int,
                  expires_at_ms: int, keep_s: int) -> None:
    """Record who declared ``media_id`` (only they may attach it to a post), kept ``keep_s``."""
    async with redis.pipeline(transaction=True) as p:
        p.hset(k_media(media_id), mapping={"owner": owner, "kind": kind, "content_type": content_type,
                                           "size": size, "expires_at": expires_at_ms})
        p.expire(k_media(media_id), keep_s)
        await p.execute()


async def declared(redis: Any, media_id: int) -> dict[str, str] | None:
    """The declaration of ``media_id``, or None if unknown (never declared, or expired)."""
    raw = await redis.hgetall(k_media(media_id))
    if not raw:
        return None
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}
