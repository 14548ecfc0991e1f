"""Sample events built from the schemas: a valid value for any record, every optional field set."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.clock import now_ms
from core.events import envelope
from core.ids import new_id
from streams.schemas import SchemaSet, default_schemas


def _sample(schema: Any, field: str, named: Mapping[str, Any]) -> Any:
    if isinstance(schema, str):
        if schema in named:
            return _sample(named[schema], field, named)
        if field.endswith("_id") and schema == "long":
            return new_id()
        return {"null": None, "boolean": True, "int": 7, "long": 42, "float": 1.5, "double": 0.25,
                "bytes": b"\x00\xffraw", "string": f"{field}-sample"}[schema]
    if isinstance(schema, list):
        return _sample(next(b for b in schema if b != "null"), field, named)
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: _sample(f["type"], f["name"], named) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][-1]
    if kind == "array":
        return [_sample(schema["items"], field, named)]
    if kind == "map":
        return {"LIKE": 3, "LOVE": 1}
    if schema.get("logicalType") == "timestamp-millis":
        return now_ms()
    return _sample(kind, field, named)


def sample_event(record: str, schemas: SchemaSet | None = None, **overrides: Any) -> dict[str, Any]:
    """Return a valid value for ``record`` with every optional field set, plus ``overrides``."""
    schemas = schemas or default_schemas()
    parsed = schemas.parsed[schemas.fullname(record)]
    value = _sample(parsed, "", parsed.get("__named_schemas", {}))
    value.update(envelope(str(value.get("actor_id", "actor"))))
    if "event_type" in value:  # what Serde.encode fills in: the short record name
        value["event_type"] = schemas.fullname(record).rpartition(".")[2]
    value.update(overrides)
    return value
