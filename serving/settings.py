"""Settings of the API process: the shared :class:`Settings` plus auth, limits and timeouts."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from fastapi import FastAPI, Request
from pydantic import Field, model_validator

from feedstream.settings import PLACEHOLDER_SECRET, Settings

DEV_ENVS = ("development", "test")


class ApiSettings(Settings):
    """Everything the API reads at start-up; every field is ``FEEDSTREAM_<FIELD>`` in the environment."""

    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_ttl_s: int = Field(default=3600, ge=1, description="lifetime of tokens minted by `feedstream dev token`")
    jwt_leeway_s: int = Field(default=10, ge=0, description="clock skew tolerated on exp/iat")

    api_rate_limit_enabled: bool = True
    api_rate_user_per_s: float = Field(default=20.0, gt=0, description="sustained writes per second per user")
    api_rate_user_burst: int = Field(default=40, ge=1, description="bucket size per user")
    api_rate_ip_per_s: float = Field(default=200.0, gt=0, description="sustained writes per second per client IP")
    api_rate_ip_burst: int = Field(default=400, ge=1, description="bucket size per client IP")

    api_idempotency_ttl_s: int = Field(default=24 * 3600, ge=1, description="how long Idempotency-Key results are kept")
    api_idempotency_pending_s: int = Field(
        default=60, ge=1, description="how long an unfinished claim blocks retries (a crashed request's key frees)")
    api_max_body_bytes: int = Field(default=64 * 1024, ge=256, description="larger request bodies get 413")
    api_produce_timeout_ms: int = Field(default=5000, ge=100, description="Kafka delivery deadline; later -> 503")
    api_linger_ms: int = Field(default=2, ge=0, description="producer batching delay")
    api_retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with 503")
    api_durable_ownership: bool = Field(default=True, description="on a Redis miss, look authors up in Cassandra")

    @model_validator(mode="after")
    def _no_placeholder_outside_dev(self) -> ApiSettings:
        if self.env not in DEV_ENVS and self.jwt_secret.get_secret_value() == PLACEHOLDER_SECRET:
            raise ValueError("FEEDSTREAM_JWT_SECRET is the development placeholder; set a real secret")
        return self


def api_settings_from(base: Settings, **overrides: Any) -> ApiSettings:
    """Return API settings on the same stack as ``base`` (e.g. the test stack), with ``overrides``."""
    return ApiSettings(**{**base.model_dump(by_alias=True), **overrides})


@lru_cache(maxsize=1)
def get_api_settings() -> ApiSettings:
    """Return the process-wide API settings, read from the environment on first use."""
    return ApiSettings()


def settings_of(app: FastAPI) -> ApiSettings:
    """The settings ``app`` runs with: an override of :func:`get_api_settings`, else create_app's."""
    override = app.dependency_overrides.get(get_api_settings)
    if override is not None:
        return override()
    return getattr(app.state, "settings", None) or get_api_settings()


async def app_settings(request: Request) -> ApiSettings:
    """FastAPI dependency: the settings of the app serving ``request`` (see :func:`settings_of`).

    Async and override-free on purpose: any entry in ``app.dependency_overrides`` makes FastAPI
    re-analyse every dependency on every request, and sync dependencies run in a thread pool.
    """
    return settings_of(request.app)
