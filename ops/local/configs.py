"""Config files of the local engines, rendered from settings (single node, small heaps)."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from streams.catalog import REGISTRY_JOURNAL, REGISTRY_SNAPSHOTS


def kafka_properties(s: Settings, log_dir: Path) -> str:
    """server.properties for one combined KRaft broker+controller (plus a PROXIED listener if set)."""
    listeners, advertised, protocols = kafka_listeners(s)
    return f"""\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@{s.host}:{s.kafka_controller_port}
listeners={listeners}
advertised.listeners={advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={protocols}
log.dirs={log_dir}
num.partitions={s.topic_partitions}
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=134217728
message.max.bytes=2097152
"""


def kafka_listeners(s: Settings) -> tuple[str, str, str]:
    """``listeners``, ``advertised.listeners`` and the protocol map.

    With ``kafka_proxy_port`` and ``kafka_proxy_advertised`` set, a second listener PROXIED binds
    the former and advertises the latter (a fault proxy in front of it), so a client that
    bootstraps through the proxy is told to connect to the proxy, not to the broker directly.
    """
    listeners = [f"PLAINTEXT://{s.host}:{s.kafka_port}", f"CONTROLLER://{s.host}:{s.kafka_controller_port}"]
    advertised = [f"PLAINTEXT://{s.host}:{s.kafka_port}"]
    protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
    if s.kafka_proxy_port and s.kafka_proxy_advertised:
        listeners.append(f"PROXIED://{s.host}:{s.kafka_proxy_port}")
        advertised.append(f"PROXIED://{s.kafka_proxy_advertised}")
        protocols.append("PROXIED:PLAINTEXT")
    return ",".join(listeners), ",".join(advertised), ",".join(protocols)


KAFKA_LOG4J = """\
# log4j2 (Kafka 4 dropped log4j 1/reload4j)
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.cleaner.name = kafka.log.LogCleaner
logger.cleaner.level = WARN
"""


def cassandra_yaml(s: Settings, data: Path) -> str:
    """A minimal single-node cassandra.yaml with absolute directories."""
    return f"""\
cluster_name: feedstream-local
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: {s.host}
rpc_address: {s.host}
storage_port: {s.cassandra_storage_port}
native_transport_port: {s.cassandra_port}
start_native_transport: true
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{s.host}:{s.cassandra_storage_port}"
data_file_directories:
  - {data / 'data'}
commitlog_directory: {data / 'commitlog'}
hints_directory: {data / 'hints'}
saved_caches_directory: {data / 'saved_caches'}
cdc_raw_directory: {data / 'cdc_raw'}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
concurrent_compactors: 1
concurrent_reads: 16
concurrent_writes: 16
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
storage_compatibility_mode: NONE
auto_snapshot: false
dynamic_snitch: false
"""


CASSANDRA_LOGBACK = """\
<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra.db.compaction" level="WARN"/>
</configuration>
"""

# From Cassandra 5.0's conf/jvm17-server.options.
CASSANDRA_JVM17 = [
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.math=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/java.net=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio.charset=ALL-UNNAMED",
]


def apicurio_properties(s: Settings, data: Path) -> dict[str, str]:
    """Apicurio Registry's Quarkus properties: KafkaSQL storage on the local Kafka, loopback only.

    ``quarkus.management.enabled`` is fixed at Apicurio's build time (on), so its management
    interface (health, metrics) is bound to loopback and its own port rather than 0.0.0.0:9000.
    """
    return {
        "quarkus.http.host": s.host,
        "quarkus.http.port": str(s.registry_port),
        "quarkus.management.host": s.host,
        "quarkus.management.port": str(s.registry_management_port),
        "quarkus.http.access-log.enabled": "false",
        'quarkus.log.category."org.apache.kafka".level': "WARN",
        "apicurio.rules.global.compatibility": "BACKWARD",  # Confluent's default for new subjects
        "apicurio.storage.kind": "kafkasql",
        "apicurio.kafkasql.bootstrap.servers": s.kafka_bootstrap,
        "apicurio.kafkasql.topic": REGISTRY_JOURNAL.name,
        "apicurio.kafkasql.snapshots.topic": REGISTRY_SNAPSHOTS.name,
        "apicurio.storage.snapshot.location": str(data),
        "apicurio.import.work-dir": str(data),
        "java.io.tmpdir": str(data),
    }
