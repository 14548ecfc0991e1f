"""The web app: static pages (feed, moderator console, pipeline dashboard) and their status endpoint.

The pages are plain HTML, CSS and ES modules under ``static/``: no build step, no framework; they call
the same-origin JSON API with the signed-in user's bearer token (see ``docs/web.md`` for why).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from serving.web import status

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "feed.html", "/moderation": "moderation.html", "/dashboard": "dashboard.html"}


def _page(name: str):  # type: ignore[no-untyped-def]
    path = STATIC / name

    async def page() -> FileResponse:
        return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-cache"})

    return page


def install(app: FastAPI) -> None:
    """Serve the pages at ``/``, ``/moderation`` and ``/dashboard``, assets under ``/app/``, and
    ``GET /v1/web/status`` (what the dashboard draws)."""
    for route, name in PAGES.items():
        app.add_api_route(route, _page(name), methods=["GET"], include_in_schema=False)
    app.mount("/app", StaticFiles(directory=STATIC), name="web-assets")
    app.include_router(status.router, prefix="/v1")
