"""A serde on an in-process schema registry, and decoded-value normalisation for comparisons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams.schemas import SchemaSet
from streams.serde import Serde, registry_client


def mock_serde(schemas: SchemaSet | None = None) -> Serde:
    """Return a Serde on confluent-kafka's in-process mock registry (no server needed)."""
    return Serde(registry_client("mock://feedstream"), schemas)


def as_millis(value: Any) -> Any:
    """Recursively turn decoded ``datetime`` values back into epoch milliseconds, for comparisons."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: as_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_millis(v) for v in value]
    return value
