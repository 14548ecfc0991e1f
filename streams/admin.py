"""Apply the catalog to a Kafka cluster and register every schema, idempotently, reporting each change."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from core.settings import Settings, get_settings
from streams.catalog import ALL_TOPICS, COPARTITIONED, Topic
from streams.errors import RegistryError, TopicAdminError
from streams.schemas import SchemaSet, default_schemas
from streams.serde import registry_client, subject_for

TIMEOUT_S = 30.0


@dataclass(frozen=True)
class TopicState:
    """A topic as the broker has it."""

    name: str
    partitions: int
    replication: int
    configs: dict[str, str]


@dataclass(frozen=True)
class Change:
    """One difference between catalog and broker; ``applied`` is False for warnings."""

    topic: str
    kind: str  # create | config | partitions; warnings: extra-partitions | replication | copartitioning
    message: str
    applied: bool = True

    def __str__(self) -> str:
        return self.message if self.applied else f"warning: {self.message}"


def admin_client(settings: Settings | None = None, bootstrap: str | None = None) -> AdminClient:
    """Return an AdminClient for ``bootstrap`` or the settings' Kafka."""
    servers = bootstrap or (settings or get_settings()).kafka_bootstrap
    return AdminClient({"bootstrap.servers": servers, "log_level": 4})


def broker_state(admin: AdminClient, names: Iterable[str] | None = None) -> dict[str, TopicState]:
    """Describe topics on the broker (all non-internal ones when ``names`` is None)."""
    metadata = admin.list_topics(timeout=TIMEOUT_S).topics
    wanted = [n for n in (names if names is not None else metadata) if n in metadata]
    wanted = [n for n in wanted if names is not None or not n.startswith("__")]
    if not wanted:
        return {}
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in wanted])
    configs = {res.name: {k: e.value for k, e in f.result(TIMEOUT_S).items()} for res, f in futures.items()}
    out = {}
    for name in wanted:
        parts = metadata[name].partitions
        replication = len(next(iter(parts.values())).replicas) if parts else 0
        out[name] = TopicState(name, len(parts), replication, configs.get(name, {}))
    return out


def plan_changes(topics: Sequence[Topic], broker: dict[str, TopicState]) -> list[Change]:
    """Compare resolved catalog topics with broker state and list what ``apply`` would do."""
    changes: list[Change] = []
    for topic in topics:
        assert topic.partitions and topic.replication, "pass topics through Topic.resolved()"
        state = broker.get(topic.name)
        if state is None:
            plural = "s" if topic.partitions != 1 else ""
            changes.append(Change(topic.name, "create", f"created {topic.name} ({topic.partitions} partition{plural})"))
            continue
        for key, want in topic.configs.items():
            have = state.configs.get(key)
            if have != want:
                changes.append(Change(topic.name, "config", f"updated {topic.name} {key}: {have} -> {want}"))
        if state.partitions < topic.partitions:
            changes.append(Change(topic.name, "partitions",
                                  f"increased {topic.name} partitions: {state.partitions} -> {topic.partitions}"))
        elif state.partitions > topic.partitions:
            changes.append(Change(topic.name, "extra-partitions", f"{topic.name} has {state.partitions} partitions, "
                                  f"catalog says {topic.partitions}; Kafka can't reduce them, left as is", False))
        if state.replication != topic.replication:
            changes.append(Change(topic.name, "replication", f"{topic.name} has replication {state.replication}, "
                                  f"catalog says {topic.replication}; not changed by apply", False))
    changes.extend(_copartitioning(topics, broker))
    return changes


def _copartitioning(topics: Sequence[Topic], broker: dict[str, TopicState]) -> list[Change]:
    """Warn when topics that must be co-partitioned have (or will have) different partition counts."""
    wanted = {t.name: t.partitions for t in topics}
    out = []
    for group in COPARTITIONED:
        counts = {t.name: max(wanted.get(t.name) or 0, broker[t.name].partitions if t.name in broker else 0)
                  for t in group}
        counts = {n: c for n, c in counts.items() if c}
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{n}={c}" for n, c in counts.items())
            out.append(Change(group[0].name, "copartitioning",
                              f"co-partitioned topics differ in partition count ({detail}); joins break", False))
    return out


def _wait(futures: dict, what: str, ignore: int | None = None) -> None:
    for name, future in futures.items():
        try:
            future.result(TIMEOUT_S)
        except KafkaException as exc:
            if ignore is not None and exc.args[0].code() == ignore:
                continue
            raise TopicAdminError(f"{what} {getattr(name, 'name', name)} failed: {exc.args[0].str()}") from exc


def _await_metadata(admin: AdminClient, want: dict[str, int]) -> None:
    """Wait (bounded) until the metadata shows every just-created topic with all its partitions.

    A broker confirms a create before every metadata answer lists it; without this wait a second
    ``apply_topics`` right after the first could plan the same create again.
    """
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        meta = admin.list_topics(timeout=TIMEOUT_S).topics
        if all(n in meta and len(meta[n].partitions) >= k for n, k in want.items()):
            return
        time.sleep(0.1)


def apply_topics(
    settings: Settings | None = None,
    *,
    topics: Sequence[Topic] = ALL_TOPICS,
    bootstrap: str | None = None,
    dry_run: bool = False,
) -> list[Change]:
    """Create missing topics, fix configs, grow partitions; return the changes (and warnings)."""
    settings = settings or get_settings()
    resolved = [t.resolved(settings) for t in topics]
    admin = admin_client(settings, bootstrap)
    changes = plan_changes(resolved, broker_state(admin, [t.name for t in resolved]))
    if dry_run:
        return changes
    by_name = {t.name: t for t in resolved}
    creates = [by_name[c.topic] for c in changes if c.kind == "create"]
    if creates:
        new = [NewTopic(t.name, int(t.partitions or 0), int(t.replication or 0), config=t.configs)
               for t in creates]
        _wait(admin.create_topics(new, request_timeout=TIMEOUT_S), "creating", KafkaError.TOPIC_ALREADY_EXISTS)
        _await_metadata(admin, {t.name: int(t.partitions or 0) for t in creates})
    altered = sorted({c.topic for c in changes if c.kind == "config"})
    if altered:
        resources = [
            ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in by_name[name].configs.items()
            ])
            for name in altered
        ]
        _wait(admin.incremental_alter_configs(resources), "altering configs of")
    grown = [NewPartitions(c.topic, int(by_name[c.topic].partitions or 0))
             for c in changes if c.kind == "partitions"]
    if grown:
        _wait(admin.create_partitions(grown, request_timeout=TIMEOUT_S), "adding partitions to")
    return changes


def delete_topics(names: Iterable[str], settings: Settings | None = None, bootstrap: str | None = None) -> None:
    """Delete topics (used by tests and benchmarks for their scratch topics)."""
    names = list(names)
    if names:
        admin = admin_client(settings, bootstrap)
        _wait(admin.delete_topics(names, operation_timeout=TIMEOUT_S), "deleting",
              KafkaError.UNKNOWN_TOPIC_OR_PART)


@dataclass(frozen=True)
class SchemaRegistration:
    """One subject's registration outcome."""

    subject: str
    schema_id: int
    created: bool

    def __str__(self) -> str:
        verb = "registered" if self.created else "unchanged"
        return f"{verb} {self.subject} (id {self.schema_id})"


# Our topics keep events for long and are read by consumers on older and newer schemas
# (topologies deployed at different times, analysts), so evolution must work both ways and
# against every earlier version: only optional fields with defaults may be added or removed.
SUBJECT_COMPATIBILITY = "FULL_TRANSITIVE"


def _ensure_compatibility(client: SchemaRegistryClient, subject: str) -> None:
    try:
        current = client.get_compatibility(subject)
    except SchemaRegistryError:
        current = None  # no subject-level config yet
    if current != SUBJECT_COMPATIBILITY:
        client.set_compatibility(subject_name=subject, level=SUBJECT_COMPATIBILITY)


def register_all_schemas(
    registry_url: str | SchemaRegistryClient | None = None,
    *,
    topics: Sequence[Topic] = ALL_TOPICS,
    schemas: SchemaSet | None = None,
) -> list[SchemaRegistration]:
    """Register every catalog value schema under ``<topic>-<record full name>``; idempotent.

    Each subject's compatibility is set to :data:`SUBJECT_COMPATIBILITY` first.
    """
    client = registry_client(registry_url or get_settings().registry_url)
    schemas = schemas or default_schemas()
    out = []
    for topic in topics:
        for record in topic.value_schemas:
            subject = subject_for(topic.name, record)
            schema = Schema(schemas.schema_str(record), "AVRO")
            try:
                _ensure_compatibility(client, subject)
                try:
                    out.append(SchemaRegistration(subject, int(client.lookup_schema(subject, schema).schema_id or 0), False))
                    continue
                except SchemaRegistryError as exc:
                    if exc.http_status_code != 404:
                        raise
                out.append(SchemaRegistration(subject, client.register_schema(subject, schema), True))
            except SchemaRegistryError as exc:
                raise RegistryError(f"registering {subject}: {exc.error_message} "
                                    f"(HTTP {exc.http_status_code}, code {exc.error_code})") from exc
            except Exception as exc:
                raise RegistryError(f"registry unreachable registering {subject}: {exc}") from exc
    return out


def apply_all(
    settings: Settings | None = None, *, echo: Callable[[str], object] = print, schemas: bool = True
) -> list[Change]:
    """Apply every catalog topic, then register every schema; ``echo`` each change ("no changes" if none)."""
    settings = settings or get_settings()
    changes = apply_topics(settings)
    for change in changes:
        echo(f"topics: {change}")
    if not any(c.applied for c in changes):
        echo("topics: no changes")
    if schemas:
        results = register_all_schemas(settings.registry_url)
        created = [r for r in results if r.created]
        echo(f"schemas: {len(created)} registered, {len(results) - len(created)} unchanged")
    return changes
