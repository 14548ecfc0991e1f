"""Load ``schemas/avro/*.avsc``: resolve named types across files, parse with fastavro, inline for the registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro

from streams.errors import SchemaError, UnknownEventError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas" / "avro"
ENVELOPE = ("event_id", "occurred_at", "actor_id", "schema_version", "event_type")
EVENT_TYPE = "event_type"  # the short record name, filled by Serde.encode; its default is the record's own name
PRIMITIVES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
NAMED = ("record", "enum", "fixed", "error")


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _walk(node: Any, ns: str | None, defined: dict[str, Any], refs: set[str]) -> None:
    """Collect the named types ``node`` defines and the names it references."""
    if isinstance(node, str):
        if node not in PRIMITIVES:
            refs.add(_fullname(node, ns))
    elif isinstance(node, list):
        for branch in node:
            _walk(branch, ns, defined, refs)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in NAMED:
            full = _fullname(node["name"], node.get("namespace", ns))
            if full in defined:
                raise SchemaError(f"named type {full} is defined twice")
            defined[full] = node
            ns = full.rpartition(".")[0] or None
            for f in node.get("fields", []):
                _walk(f["type"], ns, defined, refs)
        elif kind == "array":
            _walk(node["items"], ns, defined, refs)
        elif kind == "map":
            _walk(node["values"], ns, defined, refs)
        else:
            _walk(kind, ns, defined, refs)


def _inline(node: Any, ns: str | None, types: dict[str, Any], seen: set[str]) -> Any:
    """Copy ``node`` with fully-qualified names, defining each referenced type at its first use."""
    if isinstance(node, str):
        if node in PRIMITIVES:
            return node
        full = _fullname(node, ns)
        if full in seen:
            return full
        if full not in types:
            raise SchemaError(f"unknown type {full}")
        return _inline(types[full], full.rpartition(".")[0] or None, types, seen)
    if isinstance(node, list):
        return [_inline(b, ns, types, seen) for b in node]
    out = dict(node)
    kind = node.get("type")
    if kind in NAMED:
        full = _fullname(node["name"], node.get("namespace", ns))
        seen.add(full)
        out.pop("namespace", None)
        out["name"] = full
        inner = full.rpartition(".")[0] or None
        if "fields" in node:
            out["fields"] = [{**f, "type": _inline(f["type"], inner, types, seen)} for f in node["fields"]]
    elif kind == "array":
        out["items"] = _inline(node["items"], ns, types, seen)
    elif kind == "map":
        out["values"] = _inline(node["values"], ns, types, seen)
    elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in PRIMITIVES):
        return _inline(kind, ns, types, seen)
    return out


@dataclass(frozen=True)
class SchemaSet:
    """Every named type in a directory, plus the self-contained and parsed form of each record."""

    directory: Path
    types: dict[str, Any]
    standalone: dict[str, dict[str, Any]] = field(repr=False)
    parsed: dict[str, Any] = field(repr=False)
    short: dict[str, str] = field(repr=False)
    typed: frozenset[str] = field(default=frozenset(), repr=False)  # records with an ``event_type`` field

    @property
    def events(self) -> tuple[str, ...]:
        """Full names of every record that carries the event envelope (all topic value types)."""
        return tuple(n for n, s in self.standalone.items() if _has_envelope(s))

    def fullname(self, name: str) -> str:
        """Resolve a short (``PostCreated``) or full record name to the full name."""
        if name in self.standalone:
            return name
        try:
            return self.short[name]
        except KeyError:
            raise UnknownEventError(f"no record named {name!r} in {self.directory}") from None

    def schema_str(self, name: str) -> str:
        """Return the self-contained JSON text to register for record ``name``."""
        return json.dumps(self.standalone[self.fullname(name)], separators=(",", ":"))


def _has_envelope(schema: dict[str, Any]) -> bool:
    names = tuple(f["name"] for f in schema.get("fields", [])[: len(ENVELOPE)])
    return names == ENVELOPE


def load_schemas(directory: Path | str = SCHEMA_DIR) -> SchemaSet:
    """Read every ``.avsc`` under ``directory`` and resolve references between files."""
    directory = Path(directory)
    types: dict[str, Any] = {}
    refs: set[str] = set()
    files = sorted(directory.glob("*.avsc"))
    if not files:
        raise SchemaError(f"no .avsc files in {directory}")
    for path in files:
        try:
            node = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{path.name}: not valid JSON: {exc}") from exc
        if not isinstance(node, dict) or node.get("type") not in NAMED:
            raise SchemaError(f"{path.name}: top level must be a named type")
        before = set(types)
        _walk(node, None, types, refs)
        top = _fullname(node["name"], node.get("namespace"))
        if path.stem != top:
            raise SchemaError(f"{path.name} defines {top}; name the file {top}.avsc")
        if top in before:
            raise SchemaError(f"{path.name}: {top} is defined twice")
    missing = refs - set(types)
    if missing:
        raise SchemaError(f"unknown types referenced: {', '.join(sorted(missing))}")
    standalone: dict[str, dict[str, Any]] = {}
    parsed: dict[str, Any] = {}
    short: dict[str, str] = {}
    for full, node in types.items():
        if node["type"] != "record":
            continue
        inlined = _inline(node, full.rpartition(".")[0], types, set())
        standalone[full] = inlined
        try:
            parsed[full] = fastavro.parse_schema(inlined)
        except Exception as exc:  # fastavro raises several types
            raise SchemaError(f"{full}: {exc}") from exc
        name = full.rpartition(".")[2]
        if name in short:
            raise SchemaError(f"short record name {name} is ambiguous ({short[name]}, {full})")
        short[name] = full
    typed = frozenset(n for n, s in standalone.items() if any(f["name"] == EVENT_TYPE for f in s["fields"]))
    return SchemaSet(directory, types, standalone, parsed, short, typed)


@lru_cache(maxsize=4)
def default_schemas() -> SchemaSet:
    """Return the project's schemas, loaded once."""
    return load_schemas(SCHEMA_DIR)
