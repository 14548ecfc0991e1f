"""How each local engine is configured, launched and health-checked."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.settings import REPO_ROOT, Settings
from ops.local import configs, minio, opensearch
from ops.local.errors import LocalStackError
from ops.local.jars import jars_dir

_G1 = ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExplicitGCInvokesConcurrent",
       "-Djava.awt.headless=true", "-XX:ActiveProcessorCount=2"]


@dataclass(frozen=True)
class Engine:
    """One engine of the local stack."""

    name: str
    port: Callable[[Settings], int]
    command: Callable[[Settings, Path], list[str]]
    healthy: Callable[[Settings], bool]
    programs: tuple[str, ...] = ()
    jar_sets: tuple[str, ...] = ()
    extra_ports: Callable[[Settings], list[int]] = field(default=lambda s: [])
    after: tuple[str, ...] = ()
    optional: bool = False  # started only when named (`local up monitoring`, `up --monitoring`)
    # fetches or builds what the engine runs, once per machine, before any engine starts (echoes progress)
    prepare: Callable[[Settings, Callable[[str], None]], object] | None = None


def _java_cp(settings: Settings, jar_set: str) -> str:
    return str(jars_dir(settings.cache_dir, jar_set) / "*")


# ---------------------------------------------------------------- Kafka (KRaft)
def _kafka_command(s: Settings, data: Path) -> list[str]:
    logs = data / "logs"
    props = data / "server.properties"
    props.write_text(configs.kafka_properties(s, logs))
    (data / "log4j2.properties").write_text(configs.KAFKA_LOG4J)
    java = ["java", f"-Xms{s.kafka_heap_mb // 2}m", f"-Xmx{s.kafka_heap_mb}m", *_G1,
            f"-Dlog4j2.configurationFile={data / 'log4j2.properties'}",
            "-cp", _java_cp(s, "kafka")]
    if not (logs / "meta.properties").exists():
        cluster_id = "-"
        while cluster_id[0] in "-_":  # a leading dash would read as an option to StorageTool
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = subprocess.run(
            [*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props)],
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise LocalStackError(f"formatting Kafka storage in {logs} failed:\n{fmt.stdout}{fmt.stderr}")
    return [*java, "kafka.Kafka", str(props)]


def _kafka_healthy(s: Settings) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap, "logger": _QUIET})
    try:
        md = admin.list_topics(timeout=2)
        return len(md.brokers) > 0
    except Exception:
        return False


# ---------------------------------------------------------------- Cassandra 5.0
def _cassandra_command(s: Settings, data: Path) -> list[str]:
    yaml = data / "cassandra.yaml"
    yaml.write_text(configs.cassandra_yaml(s, data))
    (data / "logback.xml").write_text(configs.CASSANDRA_LOGBACK)
    jars = jars_dir(s.cache_dir, "cassandra")
    jamm = next(iter(sorted(jars.glob("jamm-*.jar"))), None)
    if jamm is None:
        raise LocalStackError(f"no jamm agent jar in {jars}; run `feedstream local fetch`")
    return ["java", f"-Xms{s.cassandra_heap_mb}m", f"-Xmx{s.cassandra_heap_mb}m", "-Xss512k",
            *_G1, *configs.CASSANDRA_JVM17, f"-javaagent:{jamm}",
            "-Dcassandra-foreground=yes", f"-Dcassandra.config={yaml.as_uri()}",
            f"-Dcassandra.storagedir={data}", f"-Dcassandra.logdir={data / 'logs'}",
            f"-Dlogback.configurationFile={data / 'logback.xml'}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0", "-Dcassandra.initial_token=0",
            "-Dcassandra.ring_delay_ms=0", "-Dcassandra.superuser_setup_delay_ms=0",
            "-cp", _java_cp(s, "cassandra"), "org.apache.cassandra.service.CassandraDaemon"]


def _cassandra_healthy(s: Settings) -> bool:
    from cassandra.cluster import Cluster

    cluster = Cluster(s.cassandra_hosts, port=s.cassandra_port, connect_timeout=2,
                      control_connection_timeout=2)
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        return row is not None
    except Exception:
        return False
    finally:
        cluster.shutdown()


# ---------------------------------------------------------------- Redis
def _redis_command(s: Settings, data: Path) -> list[str]:
    return ["redis-server", "--port", str(s.redis_port), "--bind", s.host, "--dir", str(data),
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
            "--maxmemory", f"{s.redis_maxmemory_mb}mb", "--maxmemory-policy", "volatile-lru"]


def _redis_healthy(s: Settings) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(s.redis_url, socket_timeout=1).ping())
    except Exception:
        return False


# ---------------------------------------------------------------- Apicurio Registry (KafkaSQL)
JVM_DIR = Path("/usr/lib/jvm")
REGISTRY_JAVA_MIN = 21  # Apicurio Registry 3's classes; Kafka, Cassandra and Flink stay on the default 17


def _java_major(home: Path) -> int:
    for line in (home / "release").read_text().splitlines() if (home / "release").exists() else []:
        if line.startswith("JAVA_VERSION="):
            return int(line.split("=", 1)[1].strip('"').split(".")[0])
    return 0


def registry_java() -> str:
    """A ``java`` of version 21 or newer: ``$FEEDSTREAM_REGISTRY_JAVA_HOME``, else the newest under /usr/lib/jvm."""
    override = os.environ.get("FEEDSTREAM_REGISTRY_JAVA_HOME")
    homes = [Path(override)] if override else sorted(JVM_DIR.glob("*"), key=_java_major, reverse=True)
    for home in homes:
        if (home / "bin" / "java").exists() and _java_major(home) >= REGISTRY_JAVA_MIN:
            return str(home / "bin" / "java")
    raise LocalStackError(
        f"Apicurio Registry needs Java {REGISTRY_JAVA_MIN}+ and none was found under {JVM_DIR} "
        "(set FEEDSTREAM_REGISTRY_JAVA_HOME to a JDK 21+ home)")


def _registry_command(s: Settings, data: Path) -> list[str]:
    from streams.admin import apply_topics
    from streams.catalog import REGISTRY_TOPICS

    apply_topics(s, topics=REGISTRY_TOPICS)  # one partition, kept forever, before Apicurio makes its own
    props = configs.apicurio_properties(s, data)
    dist = jars_dir(s.cache_dir, "apicurio")
    return [registry_java(), "-Xms64m", f"-Xmx{s.registry_heap_mb}m", *_G1,
            *(f"-D{k}={v}" for k, v in props.items()),
            "-jar", str(dist / "quarkus-run.jar")]


def _registry_healthy(s: Settings) -> bool:
    import httpx

    try:  # readiness includes the KafkaSQL journal having been replayed
        ready = httpx.get(f"http://{s.host}:{s.registry_management_port}/health/ready", timeout=2)
        return ready.status_code == 200 and httpx.get(f"{s.registry_url}/subjects", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ---------------------------------------------------------------- Prometheus (monitoring)
def _prometheus_command(s: Settings, data: Path) -> list[str]:
    from ops.monitoring import prometheus_yml
    from topologies.metrics import targets_dir

    targets_dir(s.state_dir).mkdir(parents=True, exist_ok=True)
    conf = data / "prometheus.yml"
    conf.write_text(prometheus_yml(s))
    return ["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={data / 'tsdb'}",
            f"--web.listen-address={s.host}:{s.prometheus_port}", "--storage.tsdb.retention.time=2d",
            "--log.level=warn"]


def _prometheus_healthy(s: Settings) -> bool:
    import httpx

    try:
        return httpx.get(f"http://{s.host}:{s.prometheus_port}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class _Quiet(logging.Logger):
    def log(self, *args, **kwargs) -> None:  # librdkafka logs connection refusals while waiting
        pass


_QUIET = _Quiet("ops.local.quiet")
os.environ.setdefault("PYTHONPATH", str(REPO_ROOT))

ENGINES: dict[str, Engine] = {
    "redis": Engine("redis", lambda s: s.redis_port, _redis_command, _redis_healthy,
                    programs=("redis-server",)),
    "kafka": Engine("kafka", lambda s: s.kafka_port, _kafka_command, _kafka_healthy,
                    programs=("java",), jar_sets=("kafka",),
                    extra_ports=lambda s: [s.kafka_controller_port, *([s.kafka_proxy_port] if s.kafka_proxy_port else [])]),
    "cassandra": Engine("cassandra", lambda s: s.cassandra_port, _cassandra_command,
                        _cassandra_healthy, programs=("java",), jar_sets=("cassandra",),
                        extra_ports=lambda s: [s.cassandra_storage_port]),
    "registry": Engine("registry", lambda s: s.registry_port, _registry_command,
                       _registry_healthy, jar_sets=("apicurio",), after=("kafka",),
                       extra_ports=lambda s: [s.registry_management_port]),
    "monitoring": Engine("monitoring", lambda s: s.prometheus_port, _prometheus_command,
                         _prometheus_healthy, programs=("prometheus",), optional=True),
    "opensearch": Engine("opensearch", lambda s: s.opensearch_port,
                         lambda s, data: opensearch.command(s, data, _G1), opensearch.healthy,
                         programs=("java",), jar_sets=opensearch.JAR_SETS,
                         extra_ports=lambda s: [s.opensearch_transport_port]),
    "minio": Engine("minio", lambda s: s.minio_port, minio.command, minio.healthy,
                    extra_ports=lambda s: [s.minio_console_port], prepare=minio.binary),
}
