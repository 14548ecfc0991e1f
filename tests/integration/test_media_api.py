"""``POST /v1/media`` and ``GET /v1/media/{id}`` on the real stack with MinIO (issue 19, second step).

The API declares an upload and answers a presigned form; the bytes go straight to the object store,
which enforces what the form pins. Bad declarations get 413/422 naming the field; the store down is
503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from support.api import api_settings, bearer, new_user, running_app
from support.ports import closed_port

from core.settings import Settings
from streams.admin import apply_topics

pytestmark = pytest.mark.integration
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 120


@pytest.fixture(scope="module")
def settings(media_stack: Settings) -> Settings:
    apply_topics(media_stack)
    return api_settings(media_stack, api_rate_user_burst=1000, media_max_image_bytes=4096)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with running_app(settings) as c:
        yield c


def _declare(client: TestClient, settings: Settings, user: str, **body) -> httpx.Response:
    return client.post("/v1/media", json={"kind": "IMAGE", "content_type": "image/png", "size_bytes": len(PNG),
                                          **body}, headers=bearer(settings, user))


def _upload(declared: dict, body: bytes, content_type: str = "image/png") -> httpx.Response:
    target = declared["upload"]
    return httpx.post(target["url"], data=target["fields"],
                      files={target["file_field"]: ("f", body, content_type)}, timeout=30)


def test_declare_upload_straight_to_the_store_and_see_it_uploaded(client: TestClient, settings: Settings) -> None:
    owner, other = new_user(settings), new_user(settings)
    r = _declare(client, settings, owner)
    assert r.status_code == 201, r.text
    declared = r.json()
    assert declared["kind"] == "IMAGE" and declared["upload"]["method"] == "POST"
    assert declared["upload"]["url"].startswith(settings.media_url)  # the store, not the API
    state = client.get(f"/v1/media/{declared['media_id']}", headers=bearer(settings, owner))
    assert state.status_code == 200 and state.json()["state"] == "awaiting_upload"
    assert _upload(declared, PNG).status_code == 204
    state = client.get(f"/v1/media/{declared['media_id']}", headers=bearer(settings, owner)).json()
    assert state["state"] == "uploaded" and state["uploaded_bytes"] == len(PNG)
    # someone else's media is as unknown as none
    assert client.get(f"/v1/media/{declared['media_id']}", headers=bearer(settings, other)).status_code == 404


def test_the_store_refuses_more_than_declared_and_another_type(client: TestClient, settings: Settings) -> None:
    owner = new_user(settings)
    declared = _declare(client, settings, owner, size_bytes=64).json()
    too_big = _upload(declared, PNG)  # 128 bytes against 64 declared
    assert too_big.status_code == 400 and b"EntityTooLarge" in too_big.content
    assert _upload(declared, PNG[:64], content_type="text/html").status_code in (204, 403)  # the field is pinned
    tampered = {**declared, "upload": {**declared["upload"], "fields": {**declared["upload"]["fields"],
                                                                          "Content-Type": "text/html"}}}
    assert _upload(tampered, PNG[:64]).status_code == 403


@pytest.mark.parametrize(("body", "status", "field"), [
    ({"size_bytes": 4097}, 413, "size_bytes"),
    ({"content_type": "video/mp4"}, 422, "content_type"),
    ({"kind": "AUDIO"}, 422, "kind"),
    ({"size_bytes": 0}, 422, "size_bytes"),
])
def test_bad_declarations_name_the_field(client: TestClient, settings: Settings, body: dict, status: int,
                                         field: str) -> None:
    r = _declare(client, settings, new_user(settings), **body)
    assert r.status_code == status, r.text
    assert field in r.text


def test_store_down_is_503_with_retry_after(settings: Settings) -> None:
    down = settings.model_copy(update={"media_url_override": f"http://127.0.0.1:{closed_port()}"})
    with running_app(down) as c:
        r = _declare(c, down, new_user(down))
    assert r.status_code == 503 and r.headers["Retry-After"].isdigit(), r.text
    assert "object store" in r.json()["detail"]


def test_unregistered_callers_cannot_declare(client: TestClient, settings: Settings) -> None:
    r = _declare(client, settings, new_user())
    assert r.status_code in (403, 404, 422) and r.status_code != 201, r.text
