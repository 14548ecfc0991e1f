"""Settings shared by every feedstream process, read once from the environment.

Every field can be set as ``FEEDSTREAM_<FIELD>`` (e.g. ``FEEDSTREAM_KAFKA_PORT=19092``).
Reach them through :func:`get_settings`, which tests can clear with ``get_settings.cache_clear()``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "dev-only-change-me-dev-only-change-me"


class Settings(BaseSettings):
    """Connection, port and budget settings for the local stack and the platform."""

    model_config = SettingsConfigDict(env_prefix="FEEDSTREAM_", frozen=True, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    state_dir: Path = Field(default=REPO_ROOT / ".feedstream", description="data, logs, pid files")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "feedstream", description="fetched jars")

    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    redis_port: int = 6379
    registry_port: int = 8081
    api_port: int = 8000

    kafka_heap_mb: int = 768
    cassandra_heap_mb: int = 1024
    redis_maxmemory_mb: int = 1024
    start_timeout_s: float = 180.0

    # External endpoints: when set, these win over the local stack's ports.
    kafka_bootstrap_override: str | None = Field(default=None, alias="FEEDSTREAM_KAFKA_BOOTSTRAP")
    registry_url_override: str | None = Field(default=None, alias="FEEDSTREAM_REGISTRY_URL")
    redis_url_override: str | None = Field(default=None, alias="FEEDSTREAM_REDIS_URL")
    cassandra_hosts_override: str | None = Field(default=None, alias="FEEDSTREAM_CASSANDRA_HOSTS")

    keyspace: str = "feedstream"
    topic_partitions: int = 3
    topic_replication: int = 1

    jwt_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    @model_validator(mode="after")
    def _no_placeholder_secret_outside_dev(self) -> "Settings":
        if self.env == "production" and self.jwt_secret.get_secret_value() == PLACEHOLDER_SECRET:
            raise ValueError(
                "FEEDSTREAM_JWT_SECRET is the development placeholder; "
                "set a real secret (e.g. `openssl rand -hex 32`) before running in production"
            )
        return self

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_override or f"{self.host}:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        return self.registry_url_override or f"http://{self.host}:{self.registry_port}"

    @property
    def redis_url(self) -> str:
        return self.redis_url_override or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def cassandra_hosts(self) -> list[str]:
        raw = self.cassandra_hosts_override or self.host
        return [h.strip() for h in raw.split(",") if h.strip()]

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def flink_jars_dir(self) -> Path:
        return self.cache_dir / "jars" / "flink"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()
