"""How the API reaches the platform's one :class:`~core.settings.Settings`: per app, overridable in tests."""

from __future__ import annotations

from fastapi import FastAPI, Request

from core.settings import Settings, get_settings


def settings_of(app: FastAPI) -> Settings:
    """The settings ``app`` runs with: an override of :func:`get_settings`, else create_app's."""
    override = app.dependency_overrides.get(get_settings)
    if override is not None:
        return override()
    return getattr(app.state, "settings", None) or get_settings()


async def app_settings(request: Request) -> Settings:
    """FastAPI dependency: the settings of the app serving ``request`` (see :func:`settings_of`).

    Async and override-free on purpose: any entry in ``app.dependency_overrides`` makes FastAPI
    re-analyse every dependency on every request, and sync dependencies run in a thread pool.
    """
    return settings_of(request.app)
