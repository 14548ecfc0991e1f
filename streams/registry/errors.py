"""Registry errors carrying Confluent Schema Registry HTTP statuses and error codes."""

from __future__ import annotations


class RegistryServiceError(Exception):
    """Root of every registry error; maps to an HTTP status and a Confluent error code."""

    status: int = 500
    error_code: int = 50001

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SubjectNotFound(RegistryServiceError):
    """The subject has no (visible) versions."""

    status, error_code = 404, 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFound(RegistryServiceError):
    """The subject exists but not at this version."""

    status, error_code = 404, 40402

    def __init__(self, subject: str, version: int | str) -> None:
        super().__init__(f"Version {version} not found for subject '{subject}'.")


class SchemaNotFound(RegistryServiceError):
    """No schema with this id, or this schema is not registered under the subject."""

    status, error_code = 404, 40403


class SubjectSoftDeleted(RegistryServiceError):
    """The subject was soft-deleted already."""

    status, error_code = 404, 40404


class SubjectNotSoftDeleted(RegistryServiceError):
    """A permanent delete was asked before a soft delete."""

    status, error_code = 404, 40405


class VersionSoftDeleted(RegistryServiceError):
    """The version was soft-deleted already."""

    status, error_code = 404, 40406


class VersionNotSoftDeleted(RegistryServiceError):
    """A permanent version delete was asked before a soft delete."""

    status, error_code = 404, 40407


class SubjectConfigNotFound(RegistryServiceError):
    """The subject has no subject-level compatibility configured."""

    status, error_code = 404, 40408

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' does not have subject-level compatibility configured")


class InvalidSchema(RegistryServiceError):
    """The schema text is not a valid schema of a supported type."""

    status, error_code = 422, 42201


class InvalidVersion(RegistryServiceError):
    """The version path parameter is neither a positive int nor 'latest'."""

    status, error_code = 422, 42202

    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. "
            "Allowed values are between [1, 2^31-1] and the string \"latest\""
        )


class InvalidCompatibilityLevel(RegistryServiceError):
    """The compatibility level is not one of the known levels."""

    status, error_code = 422, 42203


class InvalidRequest(RegistryServiceError):
    """The request body is not the JSON the endpoint expects."""

    status, error_code = 422, 422


class IncompatibleSchema(RegistryServiceError):
    """The schema breaks the subject's compatibility level."""

    status, error_code = 409, 409


class StorageError(RegistryServiceError):
    """The durable log could not be read or written."""

    status, error_code = 500, 50001
