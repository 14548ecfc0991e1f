"""Confluent wire format (magic 0, 4-byte schema id, Avro binary) encoded and decoded with fastavro."""

from __future__ import annotations

import io
import json
import struct
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.errors import DecodeError, RegistryError, UnknownEventError
from streams.schemas import EVENT_TYPE, SchemaSet, default_schemas
from streams.validation import validate_record

MAGIC = 0
HEADER = struct.Struct(">bI")


class Decoded(NamedTuple):
    """A decoded record: short record name (e.g. ``PostCreated``) and its value dict."""

    name: str
    value: dict[str, Any]


def subject_for(topic: str, fullname: str) -> str:
    """Return the TopicRecordNameStrategy subject ``<topic>-<record full name>``."""
    return f"{topic}-{fullname}"


def registry_client(url_or_client: SchemaRegistryClient | str) -> SchemaRegistryClient:
    """Return a client for a registry URL (``mock://`` gives confluent-kafka's in-process mock)."""
    if isinstance(url_or_client, str):
        return SchemaRegistryClient.new_client({"url": url_or_client})
    return url_or_client


class _Writer(NamedTuple):
    name: str
    schema: Any
    reader: Any


class Serde:
    """Encode events to and decode them from Confluent-framed Avro, registering schemas on first use."""

    def __init__(
        self,
        registry: SchemaRegistryClient | str,
        schemas: SchemaSet | None = None,
        *,
        auto_register: bool = True,
    ) -> None:
        self.registry = registry_client(registry)
        self.schemas = schemas or default_schemas()
        self.auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}
        self._home: dict[str, str] = {}
        self._writers: dict[int, _Writer] = {}
        self._lock = threading.Lock()

    # -- encoding -------------------------------------------------------------------------
    def schema_id(self, record: str, topic: str | None = None) -> int:
        """Return (registering if allowed) the registry id of ``record`` under its topic's subject."""
        fullname = self.schemas.fullname(record)
        if topic is None:
            topic = self._home.get(fullname) or self._home.setdefault(fullname, _topic_for(fullname))
        cached = self._ids.get((topic, fullname))
        if cached is not None:
            return cached
        subject = subject_for(topic, fullname)
        schema = Schema(self.schemas.schema_str(fullname), "AVRO")
        try:
            if self.auto_register:
                schema_id = self.registry.register_schema(subject, schema)
            else:
                schema_id = int(self.registry.lookup_schema(subject, schema).schema_id or 0)
        except SchemaRegistryError as exc:
            raise RegistryError(f"registry refused {subject}: {exc}") from exc
        except Exception as exc:  # connection errors come as requests/httpx exceptions
            raise RegistryError(f"registry unreachable for {subject}: {exc}") from exc
        with self._lock:
            self._ids[(topic, fullname)] = schema_id
            self._writers.setdefault(schema_id, _Writer(_short(fullname), self.schemas.parsed[fullname], None))
        return schema_id

    def validate(self, record: str, value: Mapping[str, Any]) -> None:
        """Raise :class:`~streams.errors.SchemaValidationError` naming the bad field, if any."""
        validate_record(self.schemas.parsed[self.schemas.fullname(record)], value)

    def encode(self, record: str, value: Mapping[str, Any], topic: str | None = None) -> bytes:
        """Validate ``value`` as ``record`` and return its Confluent-framed Avro bytes.

        The envelope's ``event_type`` is set here to the record's short name (``PostCreated``),
        whatever the caller passed, so every record on every topic names its own type.
        """
        fullname = self.schemas.fullname(record)
        parsed = self.schemas.parsed[fullname]
        if fullname in self.schemas.typed:
            value = {**value, EVENT_TYPE: _short(fullname)}
        validate_record(parsed, value)
        schema_id = self.schema_id(fullname, topic)
        out = io.BytesIO()
        out.write(HEADER.pack(MAGIC, schema_id))
        fastavro.schemaless_writer(out, parsed, value)
        return out.getvalue()

    # -- decoding -------------------------------------------------------------------------
    def decode(self, data: bytes | None) -> Decoded:
        """Decode Confluent-framed Avro into ``(record_name, value)``; raise DecodeError if it can't."""
        if data is None:
            raise DecodeError("record has no value (null or tombstone)")
        if len(data) < HEADER.size:
            raise DecodeError(f"{len(data)} bytes is too short for the Confluent wire format")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC:
            raise DecodeError(f"unknown magic byte {magic} (expected 0: not Confluent-framed Avro)")
        writer = self._writers.get(schema_id) or self._fetch_writer(schema_id)
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        try:
            value = fastavro.schemaless_reader(body, writer.schema, writer.reader)
        except Exception as exc:  # truncated or garbled bodies raise EOFError, ValueError, ...
            raise DecodeError(f"schema id {schema_id} ({writer.name}): bad Avro body: {exc!r}") from exc
        if body.tell() != len(data):
            raise DecodeError(f"schema id {schema_id} ({writer.name}): {len(data) - body.tell()} trailing bytes")
        if not isinstance(value, dict):
            raise DecodeError(f"schema id {schema_id} is not a record schema")
        return Decoded(writer.name, value)

    def _fetch_writer(self, schema_id: int) -> _Writer:
        try:
            schema = self.registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(f"schema id {schema_id} is not in the registry") from exc
            raise RegistryError(f"registry error fetching schema id {schema_id}: {exc}") from exc
        except Exception as exc:
            raise RegistryError(f"registry unreachable fetching schema id {schema_id}: {exc}") from exc
        text = schema.schema_str or ""
        try:
            writer = fastavro.parse_schema(json.loads(text))
        except Exception as exc:
            raise DecodeError(f"schema id {schema_id} is not a usable Avro schema: {exc}") from exc
        fullname = writer.get("name", "") if isinstance(writer, dict) else ""
        local = self.schemas.parsed.get(fullname)
        if local is not None and json.loads(text) == self.schemas.standalone[fullname]:
            entry = _Writer(_short(fullname), local, None)
        else:  # another version: resolve the writer's data into our reader schema when we know it
            entry = _Writer(_short(fullname) or f"schema-{schema_id}", writer, local)
        with self._lock:
            self._writers[schema_id] = entry
        return entry


def _short(fullname: str) -> str:
    return fullname.rpartition(".")[2]


def _topic_for(fullname: str) -> str:
    from streams.catalog import topic_for  # local import: catalog is the routing table

    try:
        return topic_for(fullname).name
    except UnknownEventError:
        raise UnknownEventError(f"{fullname} is not routed to any topic; pass topic=") from None
