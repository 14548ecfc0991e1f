"""Explain, field by field, why a value does not match an Avro schema."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from fastavro.validation import validate as _fast_validate

from streams.errors import SchemaValidationError

INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)
Problem = tuple[str, str]
_FIELDS: dict[int, frozenset[str]] = {}  # record field names by id() of a long-lived parsed schema


def _describe(datum: Any) -> str:
    text = repr(datum)
    return f"{type(datum).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _primitive(kind: str, datum: Any, logical: str | None) -> str | None:
    if logical in ("timestamp-millis", "timestamp-micros") and isinstance(datum, datetime):
        return None
    if logical == "date" and isinstance(datum, date):
        return None
    if kind == "null":
        return None if datum is None else f"must be null, got {_describe(datum)}"
    if datum is None:
        return "is required, got null"
    if kind == "boolean":
        return None if isinstance(datum, bool) else f"must be a boolean, got {_describe(datum)}"
    if kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        if not isinstance(datum, int) or isinstance(datum, bool):
            return f"must be an integer ({kind}), got {_describe(datum)}"
        return None if low <= datum <= high else f"is out of range for an Avro {kind}: {datum}"
    if kind in ("float", "double"):
        ok = isinstance(datum, (int, float)) and not isinstance(datum, bool)
        return None if ok else f"must be a number ({kind}), got {_describe(datum)}"
    if kind == "bytes":
        return None if isinstance(datum, (bytes, bytearray)) else f"must be bytes, got {_describe(datum)}"
    if kind == "string":
        return None if isinstance(datum, str) else f"must be a string, got {_describe(datum)}"
    return f"has unsupported type {kind}"


def explain(schema: Any, datum: Any, named: Mapping[str, Any], path: str = "") -> Problem | None:
    """Return ``(field_path, problem)`` for the first mismatch of ``datum`` against ``schema``, or None."""
    if isinstance(schema, str):
        if schema in named:
            return explain(named[schema], datum, named, path)
        problem = _primitive(schema, datum, None)
        return (path, problem) if problem else None
    if isinstance(schema, list):
        return _explain_union(schema, datum, named, path)
    kind = schema["type"]
    if kind == "record":
        return _explain_record(schema, datum, named, path)
    if kind == "enum":
        if datum in schema["symbols"]:
            return None
        return path, f"must be one of {', '.join(schema['symbols'])}; got {_describe(datum)}"
    if kind == "array":
        if not isinstance(datum, (list, tuple)):
            return path, f"must be a list, got {_describe(datum)}"
        for i, item in enumerate(datum):
            found = explain(schema["items"], item, named, f"{path}[{i}]")
            if found:
                return found
        return None
    if kind == "map":
        if not isinstance(datum, Mapping):
            return path, f"must be a dict (Avro map), got {_describe(datum)}"
        for key, item in datum.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", "map keys must be strings"
            found = explain(schema["values"], item, named, f"{path}[{key!r}]")
            if found:
                return found
        return None
    if kind == "fixed":
        ok = isinstance(datum, (bytes, bytearray)) and len(datum) == schema["size"]
        return None if ok else (path, f"must be {schema['size']} bytes, got {_describe(datum)}")
    if isinstance(kind, (dict, list)):
        return explain(kind, datum, named, path)
    problem = _primitive(kind, datum, schema.get("logicalType"))
    return (path, problem) if problem else None


def _explain_union(branches: list[Any], datum: Any, named: Mapping[str, Any], path: str) -> Problem | None:
    found = [explain(b, datum, named, path) for b in branches]
    if any(f is None for f in found):
        return None
    non_null = [(b, f) for b, f in zip(branches, found) if b != "null"]
    if len(non_null) == 1:  # an optional field: report against its real type
        return non_null[0][1]
    names = [b if isinstance(b, str) else b.get("name", b.get("type")) for b in branches]
    return path, f"matches none of the union's types ({', '.join(map(str, names))}), got {_describe(datum)}"


def _explain_record(schema: Mapping[str, Any], datum: Any, named: Mapping[str, Any], path: str) -> Problem | None:
    record = schema["name"].rpartition(".")[2]
    if not isinstance(datum, Mapping):
        return path, f"must be a {record} record (a dict), got {_describe(datum)}"
    fields = [f["name"] for f in schema["fields"]]
    for extra in datum.keys() - set(fields):
        hint = difflib.get_close_matches(str(extra), fields, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        return _join(path, str(extra)), f"is not a field of {record}{suggestion}"
    for field in schema["fields"]:
        name = field["name"]
        if name not in datum:
            if "default" in field:
                continue
            return _join(path, name), "is required but missing"
        found = explain(field["type"], datum[name], named, _join(path, name))
        if found:
            return found
    return None


def validate_record(parsed: dict[str, Any], datum: Any) -> None:
    """Raise :class:`SchemaValidationError` naming the field if ``datum`` does not fit ``parsed``."""
    record = parsed["name"].rpartition(".")[2]
    if (type(datum) is dict or isinstance(datum, Mapping)) and _fast_validate(datum, parsed, raise_errors=False):
        fields = _FIELDS.get(id(parsed))
        if fields is None:
            fields = _FIELDS[id(parsed)] = frozenset(f["name"] for f in parsed["fields"])
        if datum.keys() <= fields:
            return
    problem = explain(parsed, datum, parsed.get("__named_schemas", {}))
    if problem is not None:
        raise SchemaValidationError(record, problem[0], problem[1])
