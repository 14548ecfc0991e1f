"""Parse, validate and canonicalize Avro schema text (the only supported schema type)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import avro.errors
import avro.schema
import fastavro

from streams.registry.errors import InvalidSchema

SUPPORTED_TYPES = ("AVRO",)
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# Keys written first, in this order; any other key follows, sorted. Makes output deterministic.
KEY_ORDER = (
    "type", "name", "namespace", "doc", "aliases", "fields", "symbols", "items", "values",
    "size", "logicalType", "precision", "scale", "default", "order",
)
_DEFAULT_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),), "boolean": (bool,), "int": (int,), "long": (int,),
    "float": (int, float), "double": (int, float), "bytes": (str,), "string": (str,),
}


@dataclass(frozen=True)
class ParsedSchema:
    """A validated schema: its canonical text and the parsed avro object."""

    canonical: str
    parsed: avro.schema.Schema
    schema_type: str = "AVRO"


def parse_schema(
    text: str, schema_type: str | None = None, references: list[Any] | None = None
) -> ParsedSchema:
    """Validate ``text`` as an Avro schema and return it with its canonical form."""
    kind = (schema_type or "AVRO").upper()
    if kind not in SUPPORTED_TYPES:
        raise InvalidSchema(
            f"Schema type {kind} is not supported; this registry supports only AVRO schemas"
        )
    if references:
        raise InvalidSchema("Schema references are not supported by this registry")
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchema("Invalid schema: the 'schema' field must be a non-empty string")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSchema(f"Invalid schema: not valid JSON ({exc})") from exc
    canonical_obj = _canonical(obj)
    canonical = json.dumps(canonical_obj, separators=(",", ":"), ensure_ascii=False)
    try:
        parsed = avro.schema.parse(canonical)
        fastavro.parse_schema(json.loads(canonical))
    except (avro.errors.AvroException, fastavro.schema.SchemaParseException) as exc:
        raise InvalidSchema(f"Invalid schema: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSchema(f"Invalid schema: {type(exc).__name__}: {exc}") from exc
    _check_union_defaults(canonical_obj)
    return ParsedSchema(canonical=canonical, parsed=parsed, schema_type=kind)


def _canonical(node: Any, is_field: bool = False) -> Any:
    """Return ``node`` with keys in a fixed order and ``{"type": "int"}`` shortened to ``"int"``."""
    if isinstance(node, list):
        return [_canonical(n, is_field) for n in node]
    if not isinstance(node, dict):
        return node
    if not is_field and set(node) == {"type"} and node["type"] in PRIMITIVES:
        return node["type"]
    first = ("name",) if is_field else ()
    order = first + tuple(k for k in KEY_ORDER if k not in first)
    ordered = [k for k in order if k in node] + sorted(k for k in node if k not in order)
    out: dict[str, Any] = {}
    for key in ordered:
        value = node[key]
        # 'default' and unknown props are data, not schema: keep them verbatim.
        if key == "fields":
            out[key] = _canonical(value, is_field=True)
        elif key in ("type", "items", "values"):
            out[key] = _canonical(value)
        else:
            out[key] = value
    return out


def _check_union_defaults(node: Any, path: str = "") -> None:
    """Reject a union field default that does not match the union's first branch (Avro spec)."""
    if isinstance(node, list):
        for n in node:
            _check_union_defaults(n, path)
        return
    if not isinstance(node, dict):
        return
    for field in node.get("fields", []) if isinstance(node.get("fields"), list) else []:
        if not isinstance(field, dict):
            continue
        ftype, name = field.get("type"), f"{path}{field.get('name')}"
        if isinstance(ftype, list) and ftype and "default" in field:
            first = ftype[0]
            allowed = _DEFAULT_TYPES.get(first) if isinstance(first, str) else None
            default = field["default"]
            if allowed is not None and (
                not isinstance(default, allowed) or (first != "boolean" and isinstance(default, bool))
            ):
                raise InvalidSchema(
                    f"Invalid schema: default {json.dumps(default)} of field '{name}' does not "
                    f"match the first branch '{first}' of its union; put the default's type first"
                )
        _check_union_defaults(ftype, f"{name}.")
    for key in ("type", "items", "values"):
        if isinstance(node.get(key), (dict, list)):
            _check_union_defaults(node[key], path)
