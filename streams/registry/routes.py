"""HTTP routes of the Confluent Schema Registry REST API, one router per resource."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from streams.registry.payloads import (
    ConfigRequest,
    SchemaRequest,
    config_body,
    schema_body,
    version_body,
)
from streams.registry.service import Registry

SCHEMA_REGISTRY_JSON = "application/vnd.schemaregistry.v1+json"


class RegistryJSONResponse(JSONResponse):
    """JSON response with Confluent's media type."""

    media_type = SCHEMA_REGISTRY_JSON


def get_registry(request: Request) -> Registry:
    """FastAPI dependency: the app's registry."""
    registry: Registry = request.app.state.registry
    return registry


RegistryDep = Annotated[Registry, Depends(get_registry)]
SchemaBody = Annotated[SchemaRequest, Depends(schema_body)]
ConfigBody = Annotated[ConfigRequest, Depends(config_body)]

schemas = APIRouter(prefix="/schemas", tags=["schemas"])
subjects = APIRouter(prefix="/subjects", tags=["subjects"])
config = APIRouter(prefix="/config", tags=["config"])
compatibility = APIRouter(prefix="/compatibility", tags=["compatibility"])
root = APIRouter(tags=["server"])


@schemas.get("/types")
def schema_types() -> list[str]:
    """Schema types this registry accepts."""
    return ["AVRO"]


@schemas.get("/ids/{schema_id}")
def schema_by_id(schema_id: int, registry: RegistryDep, subject: str | None = None) -> Any:
    """The schema with this global id."""
    found = registry.schema_by_id(schema_id, subject)
    body: dict[str, Any] = {"schema": found.schema}
    if found.schema_type != "AVRO":
        body["schemaType"] = found.schema_type
    return body


@schemas.get("/ids/{schema_id}/schema")
def raw_schema_by_id(schema_id: int, registry: RegistryDep, subject: str | None = None) -> Response:
    """The schema text alone."""
    found = registry.schema_by_id(schema_id, subject)
    return Response(found.schema, media_type=SCHEMA_REGISTRY_JSON)


@schemas.get("/ids/{schema_id}/versions")
def schema_versions(schema_id: int, registry: RegistryDep, deleted: bool = False) -> Any:
    """Subject-version pairs that use this id."""
    return [{"subject": v.subject, "version": v.version} for v in registry.usages(schema_id, deleted)]


@schemas.get("/ids/{schema_id}/subjects")
def schema_subjects(schema_id: int, registry: RegistryDep, deleted: bool = False) -> Any:
    """Subjects that use this id."""
    return sorted({v.subject for v in registry.usages(schema_id, deleted)})


@subjects.get("")
def list_subjects(registry: RegistryDep, deleted: bool = False,
                  subjectPrefix: str | None = None) -> list[str]:
    """Subjects with at least one live version (or soft-deleted too if ``deleted``)."""
    names = registry.state.subject_names(deleted)
    return [n for n in names if not subjectPrefix or n.startswith(subjectPrefix)]


@subjects.get("/{subject}/versions")
def list_versions(subject: str, registry: RegistryDep, deleted: bool = False) -> list[int]:
    """Version numbers of a subject."""
    return [v.version for v in registry.versions(subject, deleted)]


@subjects.get("/{subject}/versions/{version}")
def get_version(subject: str, version: str, registry: RegistryDep, deleted: bool = False) -> Any:
    """One version of a subject, 'latest' allowed."""
    return version_body(registry.get_version(subject, version, deleted))


@subjects.get("/{subject}/versions/{version}/schema")
def get_version_schema(subject: str, version: str, registry: RegistryDep,
                       deleted: bool = False) -> Response:
    """The schema text alone of one version."""
    found = registry.get_version(subject, version, deleted)
    return Response(found.schema, media_type=SCHEMA_REGISTRY_JSON)


@subjects.post("/{subject}/versions")
def register(subject: str, body: SchemaBody, registry: RegistryDep) -> Any:
    """Register a schema; the same schema again returns the same id."""
    found = registry.register(subject, body.schema_, body.schema_type, body.references)
    return {"id": found.schema_id}


@subjects.post("/{subject}")
def lookup(subject: str, body: SchemaBody, registry: RegistryDep, deleted: bool = False) -> Any:
    """Whether this schema is registered under the subject, and as which version."""
    return version_body(registry.lookup(subject, body.schema_, body.schema_type, deleted))


@subjects.delete("/{subject}")
def delete_subject(subject: str, registry: RegistryDep, permanent: bool = False) -> list[int]:
    """Soft-delete a subject, or purge it with ``permanent=true``."""
    return registry.delete_subject(subject, permanent)


@subjects.delete("/{subject}/versions/{version}")
def delete_version(subject: str, version: str, registry: RegistryDep,
                   permanent: bool = False) -> int:
    """Soft-delete one version, or purge it with ``permanent=true``."""
    return registry.delete_version(subject, version, permanent)


@config.get("")
def get_global_config(registry: RegistryDep) -> Any:
    """Global compatibility level."""
    return {"compatibilityLevel": registry.level(None).value}


@config.put("")
def put_global_config(body: ConfigBody, registry: RegistryDep) -> Any:
    """Set the global compatibility level."""
    return {"compatibility": registry.set_level(None, body.compatibility).value}


@config.delete("")
def delete_global_config(registry: RegistryDep) -> Any:
    """Reset the global level to the server default."""
    return {"compatibilityLevel": registry.delete_level(None).value}


@config.get("/{subject}")
def get_subject_config(subject: str, registry: RegistryDep, defaultToGlobal: bool = False) -> Any:
    """A subject's compatibility level (40408 if unset, unless ``defaultToGlobal``)."""
    return {"compatibilityLevel": registry.subject_level(subject, defaultToGlobal).value}


@config.put("/{subject}")
def put_subject_config(subject: str, body: ConfigBody, registry: RegistryDep) -> Any:
    """Set a subject's compatibility level."""
    return {"compatibility": registry.set_level(subject, body.compatibility).value}


@config.delete("/{subject}")
def delete_subject_config(subject: str, registry: RegistryDep) -> Any:
    """Clear a subject's level; returns the level it had."""
    return {"compatibilityLevel": registry.delete_level(subject).value}


@compatibility.post("/subjects/{subject}/versions/{version}")
def check_version(subject: str, version: str, body: SchemaBody, registry: RegistryDep,
                  verbose: bool = False) -> Any:
    """Whether the schema is compatible with one version under the subject's level."""
    messages = registry.test_compatibility(subject, body.schema_, body.schema_type, version)
    return _verdict(messages, verbose)


@compatibility.post("/subjects/{subject}/versions")
def check_all(subject: str, body: SchemaBody, registry: RegistryDep, verbose: bool = False) -> Any:
    """Whether the schema is compatible with the versions the subject's level covers."""
    messages = registry.test_compatibility(subject, body.schema_, body.schema_type, None)
    return _verdict(messages, verbose)


def _verdict(messages: list[str], verbose: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"is_compatible": not messages}
    if verbose:
        body["messages"] = messages
    return body


@root.get("/")
def index() -> Any:
    """Confluent answers the root with an empty object."""
    return {}


@root.get("/mode")
def mode() -> Any:
    """This registry is always read-write."""
    return {"mode": "READWRITE"}


@root.get("/health")
def health(registry: RegistryDep) -> Response:
    """200 when the log is reachable, 503 otherwise."""
    try:
        registry.storage.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy, reported in the body
        return RegistryJSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return RegistryJSONResponse({"status": "ok", "subjects": len(registry.state.subject_names())})
