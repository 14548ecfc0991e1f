"""Operational endpoints: liveness, readiness (Kafka + Redis) and a framework-only benchmark ceiling."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["system"])
bench_router = APIRouter(prefix="/_bench", tags=["system"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Kafka and Redis answer",
            responses={503: {"description": "a dependency is down"}})
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(state.redis.ping(), 2)
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported in the body: readiness says what is down
        checks["redis"] = f"down: {exc!r}"
    try:
        await asyncio.to_thread(state.kafka_admin.list_topics, timeout=2)
        checks["kafka"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["kafka"] = f"down: {exc!r}"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503)


@bench_router.get("/noop", summary="Framework-only endpoint: the ceiling for benchmarks")
async def noop() -> dict[str, bool]:
    return {"ok": True}
