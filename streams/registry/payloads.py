"""API request and response bodies (kept apart from the log records)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streams.registry.errors import InvalidRequest
from streams.registry.records import SchemaVersion


class SchemaRequest(BaseModel):
    """Body of register, lookup and compatibility requests."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    schema_: str = Field(alias="schema")
    schema_type: str | None = Field(default=None, alias="schemaType")
    references: list[Any] | None = None


class ConfigRequest(BaseModel):
    """Body of ``PUT /config``."""

    model_config = ConfigDict(extra="ignore")

    compatibility: str | None = None


async def _json_body(request: Request) -> Any:
    """Parse the body as JSON whatever its content type says (Confluent clients vary)."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from exc


async def schema_body(request: Request) -> SchemaRequest:
    """FastAPI dependency: the request body as a :class:`SchemaRequest`."""
    try:
        return SchemaRequest.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid request body: {_first_error(exc)}") from exc


async def config_body(request: Request) -> ConfigRequest:
    """FastAPI dependency: the request body as a :class:`ConfigRequest`."""
    try:
        return ConfigRequest.model_validate(await _json_body(request))
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid request body: {_first_error(exc)}") from exc


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"


def version_body(v: SchemaVersion) -> dict[str, Any]:
    """Confluent's subject-version JSON (``schemaType`` omitted for AVRO, as Confluent does)."""
    body: dict[str, Any] = {"subject": v.subject, "version": v.version, "id": v.schema_id,
                            "schema": v.schema}
    if v.schema_type != "AVRO":
        body["schemaType"] = v.schema_type
    return body
