"""The feed's thin route (serving/feed/thin.py): which requests it answers itself, and where it sits.

It may answer only requests the declared FastAPI route would accept as they are; everything else
(anything FastAPI would refuse with 401/422, a consistency token to wait for) must go on to the
declared route. No engines: requests are ASGI scopes, the app is built, not started.
"""

from __future__ import annotations

from typing import Any

import pytest

from serving.app import create_app
from serving.feed import thin

pytestmark = pytest.mark.unit


def scope(user: str = "br1", query: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": f"/v1/users/{user}/feed", "path_params": {"user_id": user},
            "query_string": query, "headers": [(b"authorization", b"Bearer tok")] if headers is None else headers}


def test_a_plain_page_request_is_answered_with_defaults() -> None:
    assert thin.page_request(scope()) == ("tok", "br1", "chronological", 20, None)
    got = thin.page_request(scope(query=b"algorithm=ranked&limit=7&cursor=abc&other=1"))
    assert got == ("tok", "br1", "ranked", 7, "abc")
    assert thin.page_request(scope(query=b"limit=3&limit=9")) == ("tok", "br1", "chronological", 9, None)  # last wins
    assert thin.page_request(scope(headers=[(b"authorization", b"bearer  tok ")]))[0] == "tok"  # as HTTPBearer
    two = [(b"authorization", b"Bearer first"), (b"authorization", b"Bearer second")]
    assert thin.page_request(scope(headers=two))[0] == "first"  # Starlette's headers.get: the first


@pytest.mark.parametrize("query", [b"limit=0", b"limit=101", b"limit=", b"limit=%2B5", b"limit=1e1", b"limit=%C2%B2",
                                   b"limit=2x", b"algorithm=best", b"algorithm=", b"cursor=" + b"x" * 513])
def test_parameters_fastapi_would_refuse_go_to_the_declared_route(query: bytes) -> None:
    assert thin.page_request(scope(query=query)) is None


@pytest.mark.parametrize("headers", [[], [(b"authorization", b"Basic dTpw")], [(b"authorization", b"Bearer")],
                                     [(b"authorization", b"Bearer   ")],
                                     [(b"authorization", b"Bearer tok"), (b"x-consistency-token", b"t")]])
def test_no_bearer_or_a_consistency_token_go_to_the_declared_route(headers: list[tuple[bytes, bytes]]) -> None:
    assert thin.page_request(scope(headers=headers)) is None


@pytest.mark.parametrize("user", ["", "a/b", "no$such", "x" * 65, "br1\n"])
def test_user_ids_outside_the_pattern_go_to_the_declared_route(user: str) -> None:
    assert thin.page_request(scope(user=user)) is None


def test_the_thin_route_is_first_undocumented_and_the_declared_route_documents_the_operation() -> None:
    app = create_app()
    first = app.router.routes[0]
    assert isinstance(first, thin.FeedRoute)
    assert first.matches(scope())[0].name == "FULL"
    assert first.matches({**scope(), "method": "HEAD"})[0].name == "NONE"  # 405s and HEAD stay FastAPI's
    assert first.matches({**scope(), thin.SLOW: True})[0].name == "NONE"
    op = app.openapi()["paths"][thin.PATH]["get"]
    assert {"200", "401", "403", "422", "429", "503"} <= set(op["responses"])
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/FeedPage")
