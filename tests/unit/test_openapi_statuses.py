"""Every operation documents the error statuses it can return (issue 14 item 11).

Walks the app's OpenAPI and its routes' dependencies (no engines: the app is built, not started).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from serving.app import V1_ROUTERS, create_app
from serving.deps import get_producer, get_redis
from serving.feed.engines import get_reads
from serving.realtime import get_hub
from serving.routers import system, trending
from serving.web import status as web_status

pytestmark = pytest.mark.unit
APP = create_app()
SPEC = APP.openapi()
ENGINES = {get_reads, get_redis, get_producer, get_hub}  # dependencies that reach Kafka, Redis or Cassandra
# owner-only reads (403 for anyone else): the owner's unknown id is an empty result, never a 404
OWNER_ONLY = {("GET", "/v1/users/{user_id}/notifications"), ("GET", "/v1/users/{user_id}/notifications/unread-count"),
              ("POST", "/v1/users/{user_id}/notifications/read"), ("GET", "/v1/users/{user_id}/feed/stream"),
              ("GET", "/v1/users/{user_id}/discover")}


def _calls(d: Dependant) -> set[Any]:
    out = {d.call}
    for sub in d.dependencies:
        out |= _calls(sub)
    return out


def _routes() -> dict[tuple[str, str], APIRoute]:
    """Every APIRoute by (method, full path), from the routers the app mounts."""
    mounted = [("", system.router), ("", trending.router), ("/v1", web_status.router),
               *(("/v1", r) for r in V1_ROUTERS)]
    return {(m, prefix + r.path): r for prefix, router in mounted for r in router.routes
            if isinstance(r, APIRoute) for m in r.methods}


def _operations() -> list[tuple[str, str, dict[str, Any], set[Any]]]:
    routes = _routes()
    ops = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            ops.append((method.upper(), path, op, _calls(routes[(method.upper(), path)].dependant)))
    return ops


OPS = _operations()
# reads: GETs and the read routers' one POST (mark notifications read); writes that also use the
# read engines (target and registration checks) are writes
READS = [o for o in OPS if o[0] == "GET" or (get_reads in o[3] and o[1].endswith("/read"))]


def _documented(op: dict[str, Any]) -> set[int]:
    return {int(c) for c in op["responses"] if c.isdigit()}


def _ids(ops: list) -> list[str]:
    return [f"{m} {p}" for m, p, _, _ in ops]


def test_the_walk_sees_the_api() -> None:
    assert len(OPS) >= 30 and len(READS) >= 12
    assert sum(1 for o in OPS if "security" in o[2]) >= 30


@pytest.mark.parametrize("op", [o for o in OPS if "security" in o[2]], ids=_ids([o for o in OPS if "security" in o[2]]))
def test_every_bearer_operation_documents_401(op) -> None:
    method, path, spec, _ = op
    assert 401 in _documented(spec), f"{method} {path}"


PATH_READS = [o for o in READS if "{" in o[1] and (o[0], o[1]) not in OWNER_ONLY]


@pytest.mark.parametrize("op", PATH_READS, ids=_ids(PATH_READS))
def test_every_path_parameterised_read_documents_404(op) -> None:
    method, path, spec, _ = op
    assert 404 in _documented(spec), f"{method} {path}"


CURSOR_READS = [o for o in READS if any(p["name"] == "cursor" for p in o[2].get("parameters", []))]


@pytest.mark.parametrize("op", CURSOR_READS, ids=_ids(CURSOR_READS))
def test_every_cursor_taking_read_documents_400(op) -> None:
    method, path, spec, _ = op
    assert 400 in _documented(spec), f"{method} {path}"


ENGINE_OPS = [o for o in OPS if o[3] & ENGINES]


@pytest.mark.parametrize("op", ENGINE_OPS, ids=_ids(ENGINE_OPS))
def test_every_engine_backed_operation_documents_503_with_retry_after(op) -> None:
    method, path, spec, _ = op
    assert 503 in _documented(spec), f"{method} {path}"
    assert "Retry-After" in spec["responses"]["503"].get("headers", {}), f"{method} {path}"


def test_every_operation_documents_413_and_owner_only_reads_403() -> None:
    assert not [f"{m} {p}" for m, p, op, _ in OPS if 413 not in _documented(op)]  # BodySizeLimit: any request
    for method, path in OWNER_ONLY:
        assert 403 in _documented(SPEC["paths"][path][method.lower()])


def test_the_sets_are_not_empty() -> None:
    assert len(PATH_READS) >= 7 and len(CURSOR_READS) >= 6 and len(ENGINE_OPS) >= 30
