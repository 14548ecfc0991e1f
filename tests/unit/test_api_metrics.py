"""The API's metrics middleware on a small real ASGI app: route templates, statuses, 429s, replays."""

from __future__ import annotations

from typing import ClassVar

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from support.scrape import value

from serving import metrics
from serving.circuit import Breaker


def _app() -> FastAPI:
    app = FastAPI()

    router = APIRouter(prefix="/items")

    @router.get("/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        if item_id == "limited":
            raise HTTPException(429, "slow down")
        if item_id == "boom":
            raise HTTPException(503, "down")
        return {"id": item_id}

    @router.post("")
    async def create() -> JSONResponse:
        return JSONResponse({"ok": True}, status_code=202, headers={"Idempotent-Replayed": "true"})

    app.include_router(router, prefix="/t")  # as serving.app mounts /v1: the template keeps both prefixes

    metrics.install(app)
    return app


def test_requests_are_counted_per_route_template_not_per_path() -> None:
    client = TestClient(_app())
    before = client.get("/metrics").text
    for i in range(3):
        assert client.get(f"/t/items/x{i}").status_code == 200
    assert client.get("/t/items/limited").status_code == 429
    assert client.get("/t/items/boom").status_code == 503
    assert client.post("/t/items").status_code == 202
    assert client.get("/nowhere/at/all").status_code == 404
    text = client.get("/metrics").text
    route = "/t/items/{item_id}"

    def delta(name: str, **labels: str) -> float:
        return value(text, name, **labels) - value(before, name, **labels)

    assert delta("feedstream_http_requests_total", route=route, status="200") == 3
    assert delta("feedstream_http_requests_total", route=route, status="503") == 1
    assert delta("feedstream_http_request_duration_seconds_count", method="GET", route=route) == 5
    assert delta("feedstream_http_rate_limited_total", route=route) == 1
    assert delta("feedstream_http_idempotent_replays_total", route="/t/items") == 1
    assert delta("feedstream_http_requests_total", route=metrics.UNMATCHED, status="404") == 1
    assert "x0" not in text and "/nowhere" not in text
    assert value(text, "feedstream_http_requests_in_flight") == 1  # the scrape itself


def test_breakers_and_live_readers_are_read_at_scrape_time() -> None:
    app = _app()

    class Reads:
        redis_breaker = Breaker("redis", failures=1, reset_s=60)
        cassandra_breaker = Breaker("cassandra")
        ranker_breaker = Breaker("ranker")

    class Hub:
        clients: ClassVar[dict[str, set[object]]] = {"ann": {object()}, "bob": {object(), object()}}
        delivered = 7

    app.state.reads = Reads()
    app.state.hub = Hub()
    client = TestClient(app)
    text = client.get("/metrics").text
    assert value(text, "feedstream_realtime_readers") == 2
    assert value(text, "feedstream_realtime_pushes_total") == 7
    assert value(client.get("/metrics").text, "feedstream_circuit_breaker_state", breaker="redis") == 0
    Reads.redis_breaker.failure()
    assert value(client.get("/metrics").text, "feedstream_circuit_breaker_state", breaker="redis") == 2


def test_metrics_can_be_switched_off_to_measure_their_cost() -> None:
    from core.settings import Settings
    from serving.app import create_app

    secret = "unit-secret-unit-secret-unit-secret-0123"
    assert TestClient(create_app(Settings(jwt_secret=secret))).get("/metrics").status_code == 200
    assert TestClient(create_app(Settings(jwt_secret=secret, api_metrics=False))).get("/metrics").status_code == 404
