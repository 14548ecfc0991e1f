"""Log lines: JSON off a terminal, the request id on every line of a request, audit lines for auth failures
and refused moderator actions."""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from core import logs
from core.settings import Settings
from serving.app import create_app


@pytest.fixture()
def captured() -> logging.Handler:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    logs.install(root, json_lines=True)
    old = root.level
    root.setLevel(logging.INFO)
    handler.stream = stream
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def _lines(handler: logging.StreamHandler) -> list[dict]:
    return [json.loads(line) for line in handler.stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_event_id_and_extra_fields(captured) -> None:
    token = logs.EVENT_ID.set("ev-1")
    try:
        logging.getLogger("t.worker").warning("applied %d", 3, extra={"topology": "fanout"})
    finally:
        logs.EVENT_ID.reset(token)
    logging.getLogger("t.worker").info("outside")
    first, second = _lines(captured)[-2:]
    assert first["msg"] == "applied 3" and first["event_id"] == "ev-1" and first["topology"] == "fanout"
    assert first["level"] == "WARNING" and first["logger"] == "t.worker" and first["ts"].endswith("+00:00")
    assert "event_id" not in second


def test_every_line_of_a_request_has_its_id_and_auth_failures_are_audited(captured) -> None:
    settings = Settings(jwt_secret="unit-secret-unit-secret-unit-secret-0123")
    client = TestClient(create_app(settings))  # no lifespan: auth fails before any engine is needed
    r = client.post("/v1/posts", json={"text": "x"}, headers={"X-Request-ID": "req-abc"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "req-abc"
    audit = [x for x in _lines(captured) if x.get("audit") == "auth_failure"]
    assert audit and audit[-1]["request_id"] == "req-abc" and audit[-1]["logger"] == "feedstream.audit"
    minted = client.post("/v1/posts", json={"text": "x"}, headers={"Authorization": "Bearer nope"})
    rid = minted.headers["x-request-id"]
    assert len(rid) == 32 and rid != "req-abc"
    assert [x for x in _lines(captured) if x.get("request_id") == rid and x.get("reason")]
    assert logs.REQUEST_ID.get() is None  # reset after the request


def test_text_lines_on_a_terminal_show_the_ids() -> None:
    record = logging.makeLogRecord({"msg": "hello", "levelname": "INFO", "name": "x"})
    token = logs.REQUEST_ID.set("r1")
    try:
        logs.ContextIds().filter(record)
    finally:
        logs.REQUEST_ID.reset(token)
    assert logs.formatter(json_lines=False).format(record).endswith("x [req=r1]: hello")


def test_a_non_moderator_on_a_moderation_route_is_audited(captured) -> None:
    from serving.auth import mint_token

    settings = Settings(jwt_secret="unit-secret-unit-secret-unit-secret-0123")
    client = TestClient(create_app(settings))  # no lifespan: the role check refuses before any engine
    token = mint_token("mallory", settings)
    r = client.post("/v1/moderation/posts/1/decision", json={"decision": "REMOVE", "reason": "x"},
                    headers={"Authorization": f"Bearer {token}", "X-Request-ID": "req-mod"})
    assert r.status_code == 403, r.text
    audit = [x for x in _lines(captured) if x.get("audit") == "moderator_refused"]
    assert audit and audit[-1]["user"] == "mallory" and audit[-1]["request_id"] == "req-mod"
