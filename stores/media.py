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

import hashlib
import hmac
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.datatypes import PostPolicy
from minio.deleteobjects import DeleteObject
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

from core.settings import Settings
from stores import redis as redis_store


def upload_key(media_id: int | str) -> str:
    return f"uploads/{media_id}"


def variant_prefix(media_id: int, token_key: bytes) -> str:
    """Where a media's variants go: ``variants/<id>/<token>/``, the token an HMAC of the id, so variant
    URLs (public) can't be enumerated from ids."""
    tok = hmac.new(token_key, str(media_id).encode(), hashlib.sha256).hexdigest()[:20]
    return f"variants/{media_id}/{tok}/"


def client(s: Settings) -> Minio:
    """An S3 client for ``s.media_url`` with the platform's keys; a store that does not answer fails
    within seconds (2 s to connect, one retry), not after urllib3's default retries."""
    url = urlsplit(s.media_url)
    access, secret, _ = s.media_keys()
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2.0, read=30.0), maxsize=16,
                               retries=urllib3.Retry(total=1, backoff_factor=0.1,
                                                     status_forcelist=[500, 502, 503, 504]))
    return Minio(url.netloc, access_key=access, secret_key=secret,
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
    async with redis_store.multi(redis) as p:
        p.hset(k_media(media_id), mapping={"owner": owner, "kind": kind, "content_type": content_type,
                                           "size": size, "expires_at": expires_at_ms})
        p.expire(k_media(media_id), keep_s)
        await p.execute()


async def mark_completed(redis: Any, media_id: int, event_id: str) -> None:
    """Record that the upload of ``media_id`` was handed to processing by event ``event_id``."""
    await redis.hset(k_media(media_id), "completed_event", event_id)


async def attach(redis: Any, media_id: int, post_id: int) -> int:
    """Attach ``media_id`` to ``post_id`` unless it is attached already; return the post it is attached to."""
    await redis.hsetnx(k_media(media_id), "post_id", post_id)
    return int(await redis.hget(k_media(media_id), "post_id"))


DETACH_LUA = ("if redis.call('HGET', KEYS[1], 'post_id') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'post_id') "
              "end return 0")


async def detach(redis: Any, media_ids: list[int], post_id: int) -> None:
    """Undo :func:`attach` for a post that was not written (only where ``post_id`` holds them)."""
    for mid in media_ids:
        await redis.eval(DETACH_LUA, 1, k_media(mid), str(post_id))


async def declared(redis: Any, media_id: int) -> dict[str, str] | None:
    """The declaration of ``media_id``, or None if unknown (never declared, or expired)."""
    raw = await redis.hgetall(k_media(media_id))
    if not raw:
        return None
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


# ---------------------------------------------------------------- processing (the media topology)
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"  # variant keys never change content


def public_read_policy(bucket: str) -> str:
    """A bucket policy that lets anyone GET ``variants/*`` (and nothing else): variant URLs are
    capability URLs (an unguessable token in the key), served by the store or a CDN in front of it."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
        "Resource": [f"arn:aws:s3:::{bucket}/variants/*"]}]})


def uploads_lifecycle(days: int) -> LifecycleConfig:
    """Uploaded originals (``uploads/``) expire after ``days``: abandoned uploads (never handed over or
    attached) go, and processed ones too once their variants (the full-size fallback among them) exist."""
    return LifecycleConfig([Rule(ENABLED, rule_filter=Filter(prefix="uploads/"), rule_id="expire-uploads",
                                 expiration=Expiration(days=days))])


def ensure_public_variants(s: Settings, store: Minio | None = None) -> None:
    """Create the bucket if needed, apply :func:`public_read_policy` and the uploads' lifecycle (idempotent)."""
    store = store or client(s)
    ensure_bucket(s, store)
    store.set_bucket_policy(s.media_bucket, public_read_policy(s.media_bucket))
    store.set_bucket_lifecycle(s.media_bucket, uploads_lifecycle(s.media_upload_keep_days))


def public_url(s: Settings, key: str) -> str:
    """Where clients GET a variant: ``FEEDSTREAM_MEDIA_PUBLIC_URL`` (a CDN) or the store itself."""
    return f"{s.media_public_base.rstrip('/')}/{key}"


def read_object(s: Settings, key: str, max_bytes: int, store: Minio | None = None) -> bytes | None:
    """The bytes of ``key`` (at most ``max_bytes``), or None if there is no such object."""
    store = store or client(s)
    try:
        resp = store.get_object(s.media_bucket, key, length=max_bytes)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return None
        raise
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


def download(s: Settings, key: str, path: str, store: Minio | None = None) -> bool:
    """Write ``key`` to the file ``path``; False if there is no such object."""
    store = store or client(s)
    try:
        store.fget_object(s.media_bucket, key, path)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
            return False
        raise
    return True


def put_objects(s: Settings, objects: list[tuple[str, str, bytes]], store: Minio | None = None,
                parallel: int = 8) -> None:
    """PUT each ``(key, content type, bytes)``, immutable-cacheable, ``parallel`` at a time."""
    store = store or client(s)

    def put(obj: tuple[str, str, bytes]) -> None:
        key, ctype, data = obj
        store.put_object(s.media_bucket, key, io.BytesIO(data), len(data), content_type=ctype,
                         metadata={"Cache-Control": CACHE_IMMUTABLE})

    if len(objects) <= 1:
        for obj in objects:
            put(obj)
        return
    with ThreadPoolExecutor(min(parallel, len(objects))) as pool:
        list(pool.map(put, objects))


def delete_prefix(s: Settings, prefix: str, store: Minio | None = None) -> int:
    """Delete every object under ``prefix``; return how many there were."""
    store = store or client(s)
    keys = [DeleteObject(o.object_name) for o in store.list_objects(s.media_bucket, prefix=prefix, recursive=True)
            if o.object_name]
    errors = list(store.remove_objects(s.media_bucket, keys)) if keys else []
    if errors:
        raise MediaStoreUnavailable(f"could not delete {len(errors)} object(s) under {prefix}: {errors[0]}")
    return len(keys)


# ---------------------------------------------------------------- processing state (Redis)
def k_state(media_id: int | str) -> str:
    """JSON of a media's processing outcome: ``ready`` with its variants, or ``rejected`` with the reason."""
    return f"mediastate:{media_id}"


def state_of(result_name: str, result: dict[str, Any]) -> dict[str, Any]:
    """The stored state of a ``MediaProcessed``/``MediaRejected`` record."""
    if result_name == "MediaProcessed":
        return {"state": "ready", "owner": result["owner_id"], "kind": result["kind"], "format": result["format"],
                "width": result["width"], "height": result["height"], "duration_ms": result["duration_ms"],
                "variants": result["variants"]}
    return {"state": "rejected", "owner": result["owner_id"], "kind": result["kind"], "reason": result["reason"],
            "message": result["message"]}


def set_state(r: Any, media_id: int, state: dict[str, Any]) -> bool:
    """Record a media's processing outcome (kept as long as its post lives) unless it has a state
    already (deleted meanwhile: the caller removes what it wrote); True if recorded."""
    return bool(r.set(k_state(media_id), json.dumps(state, separators=(",", ":")), nx=True))


DELETED = {"state": "deleted"}
LOADED = "media:loaded"  # set once this Redis holds the media state rebuilt from the log (or built live)


def loaded(r: Any) -> bool:
    return bool(r.exists(LOADED))


def mark_loaded(r: Any) -> None:
    r.set(LOADED, "1")


def k_post_media(post_id: int) -> str:
    """Hash of a post's uploaded media: ``author`` and ``ids`` (JSON list), for deleting them with it."""
    return f"postmedia:{post_id}"


def post_media(r: Any, post_id: int) -> tuple[str | None, list[int]]:
    raw = r.hgetall(k_post_media(post_id))
    if not raw:
        return None, []
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    author = d["author"].decode() if isinstance(d["author"], bytes) else d["author"]
    return author, json.loads(d["ids"])


def set_post_media(r: Any, post_id: int, author: str, ids: list[int]) -> None:
    if ids:
        r.hset(k_post_media(post_id), mapping={"author": author, "ids": json.dumps(ids)})
    else:
        r.delete(k_post_media(post_id))


def delete_media(s: Settings, r: Any, media_id: int, store: Minio | None = None) -> int:
    """Delete a media's objects (its upload and variants) and mark it deleted; return the objects removed."""
    r.set(k_state(media_id), json.dumps(DELETED))
    return delete_prefix(s, f"variants/{media_id}/", store) + delete_prefix(s, upload_key(media_id), store)


def get_state_sync(r: Any, media_id: int) -> dict[str, Any] | None:
    raw = r.get(k_state(media_id))
    return json.loads(raw) if raw else None


async def get_states(redis: Any, media_ids: list[int]) -> list[dict[str, Any] | None]:
    """The outcomes of ``media_ids`` (None where processing has not finished), one round trip."""
    if not media_ids:
        return []
    raws = await redis_store.mget(redis, [k_state(m) for m in media_ids])
    return [json.loads(raw) if raw else None for raw in raws]
