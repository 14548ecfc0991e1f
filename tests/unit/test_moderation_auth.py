"""Moderator routes: a token without the ``moderator`` role is refused (403) before any engine is touched."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from core.settings import Settings
from serving.app import create_app
from serving.auth import InvalidToken, mint_token, verify_claims
from serving.routers import moderation

SECRET = "unit-test-secret-unit-test-secret-0123456789"
S = Settings(env="test", jwt_secret=SECRET)
ROUTES = [(m, "/v1/moderation" + r.path.removeprefix("/moderation"))
          for r in moderation.queue_router.routes if isinstance(r, APIRoute) for m in r.methods]


@pytest.fixture()
def client() -> TestClient:
    app = create_app(S)
    app.state.producer = app.state.redis = app.state.ownership = app.state.reads = None  # no engines
    return TestClient(app)


def test_the_roles_claim_round_trips() -> None:
    assert verify_claims(mint_token("m", S, roles=("moderator",)), S) == ("m", frozenset({"moderator"}))
    assert verify_claims(mint_token("u", S), S) == ("u", frozenset())


def test_a_malformed_roles_claim_is_an_invalid_token() -> None:
    import jwt

    bad = jwt.encode({"sub": "u", "exp": 2**40, "roles": "moderator"}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        verify_claims(bad, S)


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_moderator_route_refuses_non_moderators(client: TestClient, method: str, path: str) -> None:
    url = path.replace("{post_id}", "123")
    body = {"decision": "ALLOW", "reason": "x"}
    assert client.request(method, url, json=body).status_code == 401
    plain = {"Authorization": f"Bearer {mint_token('alice', S)}"}
    r = client.request(method, url, json=body, headers=plain)
    assert r.status_code == 403 and "not a moderator" in r.text


def test_there_are_moderator_routes() -> None:
    assert {("GET", "/v1/moderation/queue"), ("POST", "/v1/moderation/posts/{post_id}/decision")} <= set(ROUTES)
