"""Compatibility levels and checks on top of avro's ReaderWriterCompatibilityChecker."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    lookup_writer_field,
    schema_name_equals,
)
from avro.schema import ArraySchema, MapSchema, NamedSchema, RecordSchema, Schema, UnionSchema

from streams.registry.errors import InvalidCompatibilityLevel


class Level(str, Enum):
    """Confluent compatibility levels."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> Level:
        """Return the level named by ``value`` (case-insensitive) or raise 42203."""
        try:
            return cls(str(value).upper())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise InvalidCompatibilityLevel(
                f"Invalid compatibility level '{value}'. Valid values are: {names}"
            ) from None

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is checked, not just the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read data written with earlier ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether earlier schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = Level.BACKWARD


def check(new: Schema, earlier: Sequence[tuple[int, Schema]], level: Level) -> list[str]:
    """Return why ``new`` breaks ``level`` against ``earlier`` (version, schema), newest last."""
    if level is Level.NONE or not earlier:
        return []
    targets = earlier if level.transitive else earlier[-1:]
    messages: list[str] = []
    for version, old in reversed(targets):
        if level.backward:
            messages += _pair_issues(new, old, f"version {version}", new_reads=True)
        if level.forward:
            messages += _pair_issues(old, new, f"version {version}", new_reads=False)
    return messages


def _pair_issues(reader: Schema, writer: Schema, other: str, new_reads: bool) -> list[str]:
    """Describe each incompatibility of reading ``writer`` data with ``reader``."""
    direction = (
        f"BACKWARD: the new schema cannot read data written with {other}"
        if new_reads
        else f"FORWARD: {other} cannot read data written with the new schema"
    )
    return [f"{issue} ({direction})" for issue in _issues(reader, writer, "", new_reads, set())]


def _issues(
    reader: Schema, writer: Schema, path: str, new_reads: bool, seen: set[tuple[int, int]]
) -> list[str]:
    """Split avro's verdict into one message per incompatible field, recursing into records."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible or (id(reader), id(writer)) in seen:
        return []
    seen.add((id(reader), id(writer)))
    where = f"field '{path}'" if path else "the top-level schema"
    if isinstance(reader, RecordSchema) and isinstance(writer, RecordSchema):
        issues: list[str] = []
        if not schema_name_equals(reader, writer):
            issues.append(
                f"NAME_MISMATCH: {where} record name changed from '{_name(new_reads, reader, writer, True)}'"
                f" to '{_name(new_reads, reader, writer, False)}' (add the old name as an alias)"
            )
        for field in reader.fields:
            sub = f"{path}.{field.name}" if path else field.name
            found = lookup_writer_field(writer_schema=writer, reader_field=field)
            if found is None:
                if not field.has_default and not field.type.props.get("default"):
                    issues.append(_missing_default(sub, new_reads))
            else:
                issues += _issues(field.type, found.type, sub, new_reads, seen)
        return issues or [_describe(result, where, reader, writer, new_reads)]
    if isinstance(reader, ArraySchema) and isinstance(writer, ArraySchema):
        return _issues(reader.items, writer.items, f"{path}[]", new_reads, seen)
    if isinstance(reader, MapSchema) and isinstance(writer, MapSchema):
        return _issues(reader.values, writer.values, f"{path}{{}}", new_reads, seen)
    unions = isinstance(reader, UnionSchema) or isinstance(writer, UnionSchema)
    if not unions and reader.type != writer.type:
        old, new = (writer, reader) if new_reads else (reader, writer)
        message = (
            f"TYPE_MISMATCH: {where} changed type from {_type(old)} to {_type(new)}, "
            f"and {_type(reader)} cannot read {_type(writer)}"
        )
        return [message]
    return [_describe(result, where, reader, writer, new_reads)]


def _missing_default(field: str, new_reads: bool) -> str:
    """Explain a reader field that the writer lacks and that has no default."""
    if new_reads:
        return f"READER_FIELD_MISSING_DEFAULT_VALUE: field '{field}' was added without a default"
    return f"READER_FIELD_MISSING_DEFAULT_VALUE: field '{field}' was removed without a default"


def _describe(
    result: SchemaCompatibilityResult, where: str, reader: Schema, writer: Schema, new_reads: bool
) -> str:
    """Fall back to avro's own wording, prefixed with the incompatibility kind and place."""
    kinds = ", ".join(sorted({i.value.upper() for i in result.incompatibilities}))
    old, new = (writer, reader) if new_reads else (reader, writer)
    change = f"changed from {_type(old)} to {_type(new)}"
    details = "; ".join(sorted(result.messages))
    return f"{kinds}: {where} {change}: {details}"


def _type(schema: Schema) -> str:
    """Short human name of a schema's type."""
    if isinstance(schema, NamedSchema):
        symbols = getattr(schema, "symbols", None)
        suffix = f"{{{', '.join(symbols)}}}" if symbols else ""
        return f"{schema.type} {schema.fullname}{suffix}"
    if isinstance(schema, UnionSchema):
        return "[" + ", ".join(_type(s) for s in schema.schemas) + "]"
    if isinstance(schema, ArraySchema):
        return f"array<{_type(schema.items)}>"
    if isinstance(schema, MapSchema):
        return f"map<{_type(schema.values)}>"
    logical = schema.props.get("logicalType")
    return f"{schema.type} ({logical})" if logical else str(schema.type)


def _name(new_reads: bool, reader: NamedSchema, writer: NamedSchema, old: bool) -> str:
    """Full name of the old (``old=True``) or new named schema of a reader/writer pair."""
    old_schema, new_schema = (writer, reader) if new_reads else (reader, writer)
    return (old_schema if old else new_schema).fullname
