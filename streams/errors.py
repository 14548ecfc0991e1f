"""Exceptions of the streams package; every one derives from :class:`StreamsError`."""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error raised by :mod:`streams`."""


class SchemaError(StreamsError):
    """A schema file is missing, malformed or references an unknown type."""


class UnknownEventError(StreamsError):
    """A record name is not defined in ``schemas/avro`` or not routed to any topic."""


class SchemaValidationError(StreamsError, ValueError):
    """An event does not match its schema; ``field`` is the dotted path of the first bad field."""

    def __init__(self, record: str, field: str, problem: str) -> None:
        self.record = record
        self.field = field
        self.problem = problem
        where = f"field '{field}'" if field else "the record"
        super().__init__(f"invalid {record}: {where} {problem}")


class DecodeError(StreamsError):
    """Bytes could not be decoded as a Confluent-framed Avro record (a poison record)."""


class RegistryError(StreamsError):
    """The schema registry could not be reached or refused a request."""


class DeliveryError(StreamsError):
    """Kafka did not confirm delivery of a record; from ``EventProducer`` it was then never sent or refused,
    unless it is a :class:`DeliveryInDoubt`."""


class DeliveryInDoubt(DeliveryError):
    """Kafka did not confirm a record that may still be, or have been, written (a timeout while sent).

    ``partition`` is where it was sent (None if unknown). Only reading the log tells the outcome.
    """

    def __init__(self, message: str, partition: int | None = None) -> None:
        super().__init__(message)
        self.partition = partition


class PoisonRecord(StreamsError):
    """Raised by a consumer handler to send the current record to the dead-letter topic."""


class TopicAdminError(StreamsError):
    """Creating or altering topics failed."""
