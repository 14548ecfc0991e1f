"""Log records of the registry and their JSON encoding (close to Confluent's `_schemas` topic)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from streams.registry.errors import StorageError


@dataclass(frozen=True)
class StoredRecord:
    """One key/value pair in the durable log; ``value=None`` is a tombstone."""

    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class SchemaVersion:
    """A schema registered under a subject at a version."""

    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False
    schema_type: str = "AVRO"


@dataclass(frozen=True)
class ConfigChange:
    """A compatibility level set (``level``) or cleared (``None``) globally or for a subject."""

    subject: str | None
    level: str | None


@dataclass(frozen=True)
class VersionPurge:
    """A version removed permanently."""

    subject: str
    version: int


@dataclass(frozen=True)
class IdWatermark:
    """The highest schema id ever handed out, kept so ids are never reused after purges."""

    max_id: int


Event = SchemaVersion | ConfigChange | VersionPurge | IdWatermark


def _dump(obj: dict[str, Any]) -> bytes:
    """Compact JSON bytes in insertion order (keys must be byte-stable for compaction)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def encode(event: Event) -> StoredRecord:
    """Encode an event as a log record."""
    if isinstance(event, SchemaVersion):
        key = {"keytype": "SCHEMA", "subject": event.subject, "version": event.version, "magic": 1}
        value = {
            "subject": event.subject, "version": event.version, "id": event.schema_id,
            "schema": event.schema, "schemaType": event.schema_type, "deleted": event.deleted,
        }
        return StoredRecord(_dump(key), _dump(value))
    if isinstance(event, VersionPurge):
        key = {"keytype": "SCHEMA", "subject": event.subject, "version": event.version, "magic": 1}
        return StoredRecord(_dump(key), None)
    if isinstance(event, ConfigChange):
        key = {"keytype": "CONFIG", "subject": event.subject, "magic": 0}
        body = None if event.level is None else _dump({"compatibilityLevel": event.level})
        return StoredRecord(_dump(key), body)
    return StoredRecord(_dump({"keytype": "ID_WATERMARK", "magic": 0}), _dump({"maxId": event.max_id}))


def decode(record: StoredRecord) -> Event | None:
    """Decode a log record; unknown key types (e.g. Confluent's NOOP) give ``None``."""
    try:
        key = json.loads(record.key)
        value = None if record.value is None else json.loads(record.value)
        kind = key.get("keytype")
        if kind == "SCHEMA":
            if value is None:
                return VersionPurge(key["subject"], int(key["version"]))
            return SchemaVersion(
                subject=value["subject"], version=int(value["version"]), schema_id=int(value["id"]),
                schema=value["schema"], deleted=bool(value.get("deleted", False)),
                schema_type=value.get("schemaType", "AVRO"),
            )
        if kind == "CONFIG":
            return ConfigChange(key.get("subject"), None if value is None else value["compatibilityLevel"])
        if kind == "ID_WATERMARK" and value is not None:
            return IdWatermark(int(value["maxId"]))
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(f"Corrupt registry record {record.key!r}: {exc}") from exc
