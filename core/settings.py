"""The platform's one settings model, read once from the environment and shared by every process.

Every field can be set as ``FEEDSTREAM_<FIELD>`` (e.g. ``FEEDSTREAM_KAFKA_PORT=19092``). Fields are
grouped by concern in the sections below; :class:`Settings` is all of them at once, so the API, the
workers, the trending job, the CLI and the benchmarks read the same values. Reach them through
:func:`get_settings` (tests clear it with ``get_settings.cache_clear()``) and derive variants with
:func:`with_overrides`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.feed import Policy

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRET = "dev-only-change-me-dev-only-change-me"
MEDIA_PLACEHOLDER = "feedstream-dev-only"  # the S3 secret key (the local MinIO root password) in development
MEDIA_TOKEN_PLACEHOLDER = "feedstream-dev-only-media"
DEV_ENVS = ("development", "test")
DEFAULT_TRENDING_WINDOWS = "1h/1m/5m/10s,1m/10s/30s/2s"
_CONFIG = SettingsConfigDict(env_prefix="FEEDSTREAM_", frozen=True, extra="ignore")


class PlaceholderSecret(ValueError):
    """The development JWT secret was given to a process that signs, outside development."""


class StackSettings(BaseSettings):
    """Where the engines run: host, ports, heaps, state and cache directories."""

    model_config = _CONFIG

    env: Literal["development", "test", "production"] = "development"
    host: str = "127.0.0.1"
    state_dir: Path = Field(default=REPO_ROOT / ".feedstream", description="data, logs, pid files")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "feedstream", description="fetched jars")

    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    # A second, proxied broker listener (the chaos suite's Toxiproxy): the broker binds
    # ``kafka_proxy_port`` and advertises ``kafka_proxy_advertised`` (the proxy's host:port) on it,
    # so clients bootstrapping through the proxy keep talking through it. Unset: one listener.
    kafka_proxy_port: int | None = None
    kafka_proxy_advertised: str | None = None
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    redis_port: int = 6379
    registry_port: int = 8081
    registry_management_port: int = Field(default=8091, description="Apicurio's health/metrics port")
    api_port: int = 8000
    prometheus_port: int = Field(default=9090, description="the local Prometheus (monitoring engine)")

    kafka_heap_mb: int = 768
    cassandra_heap_mb: int = 1024
    registry_heap_mb: int = 384
    redis_maxmemory_mb: int = 1024
    start_timeout_s: float = 180.0


class EndpointSettings(BaseSettings):
    """External endpoints: when set, these win over the local stack's ports."""

    model_config = _CONFIG

    kafka_bootstrap_override: str | None = Field(default=None, alias="FEEDSTREAM_KAFKA_BOOTSTRAP")
    registry_url_override: str | None = Field(default=None, alias="FEEDSTREAM_REGISTRY_URL")
    redis_url_override: str | None = Field(default=None, alias="FEEDSTREAM_REDIS_URL")
    # "host:port,host:port": a Redis Cluster's seed nodes; when set, stores/redis.py connects to the
    # cluster instead of ``redis_url`` (the local stack stays single-node)
    redis_cluster_nodes: str | None = Field(default=None, alias="FEEDSTREAM_REDIS_CLUSTER_NODES")
    cassandra_hosts_override: str | None = Field(default=None, alias="FEEDSTREAM_CASSANDRA_HOSTS")


class DataSettings(BaseSettings):
    """Keyspace and topic layout."""

    model_config = _CONFIG

    keyspace: str = "feedstream"
    topic_partitions: int = 3
    topic_replication: int = 1


class AuthSettings(BaseSettings):
    """Bearer tokens: the signing secret and the JWT rules."""

    model_config = _CONFIG

    jwt_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_ttl_s: int = Field(default=3600, ge=1, description="lifetime of tokens minted by `feedstream dev token`")
    jwt_leeway_s: int = Field(default=10, ge=0, description="clock skew tolerated on exp/iat")


class ApiSettings(BaseSettings):
    """The HTTP layer: rate limits, idempotency, body size, Kafka delivery deadline."""

    model_config = _CONFIG

    api_rate_limit_enabled: bool = True
    api_rate_user_per_s: float = Field(default=20.0, gt=0, description="sustained writes per second per user")
    api_rate_user_burst: int = Field(default=40, ge=1, description="bucket size per user")
    api_rate_ip_per_s: float = Field(default=200.0, gt=0, description="sustained writes per second per client IP")
    api_rate_ip_burst: int = Field(default=400, ge=1, description="bucket size per client IP")
    # reads have their own, larger buckets (a page of a feed costs about what a write does)
    api_read_rate_user_per_s: float = Field(default=50.0, gt=0, description="sustained reads per second per user")
    api_read_rate_user_burst: int = Field(default=100, ge=1, description="read bucket size per user")
    api_read_rate_ip_per_s: float = Field(default=1000.0, gt=0, description="sustained reads per second per client IP")
    api_read_rate_ip_burst: int = Field(default=2000, ge=1, description="read bucket size per client IP")

    api_registered_ttl_s: int = Field(
        default=7 * 24 * 3600, ge=1,
        description="how long the API's own mark of an accepted registration is kept (it covers the users "
                    "topology's lag; after it the profile view answers)")

    api_idempotency_ttl_s: int = Field(default=24 * 3600, ge=1, description="how long Idempotency-Key results are kept")
    api_idempotency_pending_s: int = Field(
        default=60, ge=1, description="how long an unfinished claim blocks retries (a crashed request's key frees)")
    api_max_body_bytes: int = Field(default=64 * 1024, ge=256, description="larger request bodies get 413")
    api_produce_timeout_ms: int = Field(default=5000, ge=100, description="Kafka delivery deadline; later -> 503")
    api_linger_ms: int = Field(default=2, ge=0, description="producer batching delay")
    api_retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with 503")
    api_durable_ownership: bool = Field(default=True, description="on a Redis miss, look authors up in Cassandra")
    api_metrics: bool = Field(default=True, description="serve GET /metrics and count every request "
                                                    "(off: to measure what metrics cost)")
    ranker: Literal["auto", "lightgbm", "heuristic"] = Field(
        default="auto", description="feed ranker: LightGBM if its artifact loads (auto), or one named")


class TracingSettings(BaseSettings):
    """OpenTelemetry tracing (core/tracing.py): off unless an exporter is named."""

    model_config = _CONFIG

    tracing_exporter: Literal["none", "otlp", "file"] = Field(
        default="none", description="none (off), otlp (OTLP/HTTP to tracing_otlp_endpoint) or file "
                                    "(JSON spans appended to tracing_file: tests, debugging)")
    tracing_otlp_endpoint: str = Field(default="http://127.0.0.1:4318/v1/traces",
                                       description="an OTLP/HTTP collector's traces URL")
    tracing_file: Path | None = Field(default=None, description="where the file exporter appends spans")
    tracing_sample_ratio: float = Field(default=1.0, ge=0, le=1,
                                        description="share of new traces kept (a traced parent's choice wins)")


class IdSettings(BaseSettings):
    """Node numbers of id-issuing processes (the API): see ``core/ids.py`` and ``stores/idnodes.py``."""

    model_config = _CONFIG

    id_node_bits: int = Field(
        default=6, ge=1, le=8,
        description="bits naming the node in each id: 2**bits processes at once (HPA max + surge + "
                    "crashed pods' unexpired leases must fit), 2**(12-bits) ids per ms per process")
    id_node: int | None = Field(
        default=None, ge=0, description="a fixed node number (e.g. a StatefulSet ordinal), unique among "
                                        "live processes; unset: lease one in Redis (idnode:{n})")
    id_node_lease_ttl_s: float = Field(
        default=30.0, ge=1.0, description="lease TTL; renewed every quarter, ids stop after three quarters "
                                          "without a renewal")


class TimelineSettings(BaseSettings):
    """Home timelines: the hybrid fan-out policy and the rebuild of skipped or evicted timelines."""

    model_config = _CONFIG

    timeline_cap: int = 800
    celebrity_threshold: int = 10_000
    inactive_days: float = 30.0
    backfill_limit: int = 20
    author_cache_cap: int = 200
    rebuild_per_author: int = 100
    rebuild_lock_ms: int = 10_000

    @property
    def policy(self) -> Policy:
        """The pure-logic fan-out policy these settings describe."""
        return Policy(self.celebrity_threshold, self.inactive_days, self.timeline_cap, self.backfill_limit)


class TopologySettings(BaseSettings):
    """Faust workers: consumer group suffix, offset reset, derived-topic emission, batch logs, and
    how long a crashed (or stopping) worker may take to stop before it exits anyway."""

    model_config = _CONFIG

    emit_timeline_updates: bool = True
    topology_group_suffix: str = ""
    topology_offset_reset: str = "earliest"
    log_batches: bool = False
    topology_shutdown_grace_s: float = 15.0
    topology_await_timeout_s: float = Field(
        default=120.0, gt=0,
        description="how long a worker waits for a Kafka delivery or a blocking call in a thread before it "
                    "crashes (exit 70, the records unacked: the restart re-reads them); a Kafka outage "
                    "shorter than this is waited out")
    topology_session_timeout_s: float = Field(
        default=10.0, ge=6.0, le=300.0,
        description="consumer-group session timeout: how long a killed worker's partitions stay assigned "
                    "to it (its restarted successor waits that long; Faust's default is 60 s)")
    worker_metrics_port: int | None = Field(
        default=None, description="a worker's /metrics, /livez, /readyz port (0: any free one); unset: "
                                  "worker_metrics_port_base plus the topology's offset")
    worker_metrics_port_base: int = 9250
    worker_metrics_bind_all: bool = Field(default=False, description="bind 0.0.0.0 (pods), not host")
    worker_live_max_age_s: float = Field(default=30.0, description="/livez fails on an older progress tick")
    moderation_reload_check_s: float = Field(
        default=1.0, gt=0, description="how often the moderation worker checks that Redis still holds its state")
    moderation_blocked_domains: str = Field(
        default="", description="comma-separated link domains the moderation rules remove (with subdomains)")
    graph_user_grace_s: float = Field(
        default=10.0, description="how long after a graph event's occurred_at the graph worker waits "
        "for a user it names to be registered before dead-lettering it as UnknownUser")


class EngagementSettings(BaseSettings):
    """The engagement processor: CAS retries, window row TTL, chunk size."""

    model_config = _CONFIG

    engagement_cas_retries: int = 20
    engagement_window_ttl_s: int = Field(default=7 * 86_400, description="0 keeps window rows forever")
    engagement_chunk: int = Field(default=100, description="events per post per conditional batch")


class TrendingSettings(BaseSettings):
    """The trending job: windows (``SIZE/SLIDE[/LATENESS[/OOO]]``, comma-separated), top-K, cluster knobs."""

    model_config = _CONFIG

    trending_windows: str = DEFAULT_TRENDING_WINDOWS
    trending_k: int = 20
    trending_parallelism: int | None = None
    trending_checkpoint_dir: str | None = None
    trending_checkpoint_timeout_s: int = Field(
        default=60, gt=0, description="a local checkpoint still in flight after this fails (Flink's default 10 min)")
    trending_tolerable_failed_checkpoints: int = Field(
        default=5, ge=0, description="failed checkpoints in a row the local job tolerates before it restarts")


class SearchSettings(BaseSettings):
    """OpenSearch: the local node's ports and heap, an external endpoint, the index alias."""

    model_config = _CONFIG

    opensearch_port: int = 9200
    opensearch_transport_port: int = 9300
    opensearch_heap_mb: int = 512
    opensearch_url_override: str | None = Field(default=None, alias="FEEDSTREAM_OPENSEARCH_URL")
    search_alias: str = Field(default="feedstream-search", description="alias the API reads; replay swaps it")
    search_timeout_s: float = Field(default=2.0, gt=0, description="per-request OpenSearch deadline; later -> 503")


class MediaSettings(BaseSettings):
    """The S3-compatible object store for media: the local MinIO's ports, or any S3 endpoint."""

    model_config = _CONFIG

    minio_port: int = Field(default=9000, description="the local MinIO's S3 API")
    minio_console_port: int = Field(default=9001, description="the local MinIO's web console")
    media_url_override: str | None = Field(default=None, alias="FEEDSTREAM_MEDIA_URL",
                                           description="an external S3 endpoint, e.g. https://s3.eu-west-1.amazonaws.com")
    media_public_url: str | None = Field(default=None, description="base URL clients GET variants from (a CDN "
                                         "in front of the bucket); default: the store's own URL and bucket")
    media_region: str = "us-east-1"
    media_access_key: str = Field(default="feedstream", description="S3 access key (the local MinIO's root user)")
    media_secret_key: SecretStr = Field(default=SecretStr(MEDIA_PLACEHOLDER),
                                        description="S3 secret key (the local MinIO's root password)")
    media_bucket: str = Field(default="feedstream-media", description="bucket of uploads and their variants")
    media_max_image_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="largest image upload")
    media_max_video_bytes: int = Field(default=200 * 1024 * 1024, gt=0, description="largest video upload")
    media_upload_ttl_s: int = Field(default=900, gt=0, description="how long an upload form is valid")
    media_declaration_ttl_s: int = Field(default=86_400, gt=0, description="how long a declared upload "
                                         "may wait to be attached to a post")
    media_upload_keep_days: int = Field(default=2, ge=1, description="days an uploaded original is kept "
                                        "(an object lifecycle rule on uploads/): abandoned uploads expire")
    media_reload_check_s: float = Field(default=5.0, gt=0, description="how often the media worker checks "
                                        "that Redis still holds its state (else it rebuilds it from the log)")
    media_max_pixels: int = Field(default=40_000_000, gt=0, description="largest image (width x height) the "
                                  "media topology decodes; more is rejected (guards against decompression bombs)")
    media_max_video_s: float = Field(default=60.0, gt=0, description="longest video the media topology accepts")
    media_video_heights: tuple[int, ...] = Field(default=(240, 480), description="HLS rendition ladder "
                                                 "(heights; none above the source's)")
    media_ffmpeg_timeout_s: float = Field(default=90.0, gt=0, description="bound of one ffmpeg/ffprobe run")
    media_ffmpeg_threads: int = Field(default=1, ge=1, description="threads one ffmpeg encode may use")
    media_image_widths: tuple[int, ...] = Field(default=(480, 1080), description="widths of the image variants "
                                                "(none wider than the source)")
    media_thumb_px: int = Field(default=160, gt=0, description="the thumbnail's longest side")
    media_variant_token_key: SecretStr = Field(default=SecretStr(MEDIA_TOKEN_PLACEHOLDER),
                                               description="HMAC key of the unguessable part of variant keys")


class ConsistencySettings(BaseSettings):
    """Read-your-writes (docs/consistency.md), and which workers refuse events by unregistered users."""

    model_config = _CONFIG

    consistency_wait_s: float = Field(default=2.0, ge=0, description="bound of a read's wait for its token")
    consistency_own_reads: bool = Field(default=True, description="reads of one's own data wait on one's last writes")
    consistency_user_ttl_s: int = Field(default=600, ge=1, description="how long a user's last write positions are kept")
    engagement_user_check: bool = Field(
        default=True, description="the engagement worker dead-letters engagements by users who never registered "
        "(proven by the users topology's progress: it waits while that topology is down)")


class Settings(StackSettings, EndpointSettings, DataSettings, AuthSettings, ApiSettings, IdSettings,
               TimelineSettings, TopologySettings, EngagementSettings, TrendingSettings, SearchSettings,
               MediaSettings, ConsistencySettings, TracingSettings):
    """Every setting of the platform (see the sections above); frozen once read."""

    model_config = _CONFIG

    def signing_secret(self) -> str:
        """The JWT/cursor signing key; outside development the placeholder is refused.

        Only the processes that sign or verify (the API, token minting, the seed) call this, so
        workers and the registry run in production without the key.
        """
        value = self.jwt_secret.get_secret_value()
        if self.env not in DEV_ENVS and value == PLACEHOLDER_SECRET:
            raise PlaceholderSecret(
                "FEEDSTREAM_JWT_SECRET is the development placeholder; "
                "set a real secret (e.g. `openssl rand -hex 32`) before running in production"
            )
        return value

    @model_validator(mode="after")
    def _id_node_fits(self) -> Settings:
        if self.id_node is not None and self.id_node >= 1 << self.id_node_bits:
            raise ValueError(f"FEEDSTREAM_ID_NODE={self.id_node} does not fit in "
                             f"FEEDSTREAM_ID_NODE_BITS={self.id_node_bits}")
        return self

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap_override or f"{self.host}:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        """Apicurio's Confluent-compatible API (what every serde and the Flink format talk to)."""
        return self.registry_url_override or f"http://{self.host}:{self.registry_port}/apis/ccompat/v7"

    @property
    def redis_url(self) -> str:
        return self.redis_url_override or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def cassandra_hosts(self) -> list[str]:
        raw = self.cassandra_hosts_override or self.host
        return [h.strip() for h in raw.split(",") if h.strip()]

    @property
    def opensearch_url(self) -> str:
        return self.opensearch_url_override or f"http://{self.host}:{self.opensearch_port}"

    @property
    def media_url(self) -> str:
        """The S3 endpoint media is stored at (the local MinIO unless ``FEEDSTREAM_MEDIA_URL``)."""
        return self.media_url_override or f"http://{self.host}:{self.minio_port}"

    def media_keys(self) -> tuple[str, str, bytes]:
        """The S3 access and secret keys and the variant-URL HMAC key; outside development the
        placeholders are refused (the API and the media worker call this, nothing else)."""
        secret, token = self.media_secret_key.get_secret_value(), self.media_variant_token_key.get_secret_value()
        if self.env not in DEV_ENVS and (secret == MEDIA_PLACEHOLDER or token == MEDIA_TOKEN_PLACEHOLDER):
            raise PlaceholderSecret("FEEDSTREAM_MEDIA_SECRET_KEY or FEEDSTREAM_MEDIA_VARIANT_TOKEN_KEY is the "
                                    "development placeholder; set real keys (e.g. `openssl rand -hex 32`) in production")
        return self.media_access_key, secret, token.encode()

    @property
    def media_public_base(self) -> str:
        """Base URL of variant objects for clients (``media_public_url``, or the bucket on the store)."""
        return self.media_public_url or f"{self.media_url.rstrip('/')}/{self.media_bucket}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def flink_jars_dir(self) -> Path:
        return self.cache_dir / "jars" / "flink"


def with_overrides(base: Settings, **overrides: Any) -> Settings:
    """``base`` with ``overrides`` (by field name) applied and validated (e.g. the test stack with a
    tighter limit). A field read from an aliased variable is set by its alias (the field name alone
    would be ignored), and an unknown name is an error rather than silently ignored."""
    fields = Settings.model_fields
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    named = {fields[k].alias or k: v for k, v in overrides.items()}
    return Settings(**{**base.model_dump(by_alias=True), **named})


def isolated(settings: Settings, keyspace: str, redis_db: int) -> Settings:
    """``settings`` pointing at their own keyspace and Redis database (same engines)."""
    base = settings.redis_url.rsplit("/", 1)[0]
    return settings.model_copy(update={"keyspace": keyspace, "redis_url_override": f"{base}/{redis_db}"})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read from the environment on first use."""
    return Settings()
