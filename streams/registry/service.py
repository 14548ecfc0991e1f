"""Registry operations with Confluent semantics: write to the log first, then update memory.

Single-writer assumption: one registry process owns the log. State is replayed once at start;
records written by another process afterwards are not seen. Mutations are serialized by a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from streams.registry import compat
from streams.registry.compat import Level
from streams.registry.errors import (
    IncompatibleSchema,
    InvalidVersion,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from streams.registry.records import (
    ConfigChange,
    Event,
    IdWatermark,
    SchemaVersion,
    VersionPurge,
    decode,
    encode,
)
from streams.registry.schemas import ParsedSchema, parse_schema
from streams.registry.state import RegistryState
from streams.registry.storage import Storage

MAX_VERSION = 2**31 - 1


def parse_version(raw: str | int) -> int | None:
    """Return the version number, ``None`` for 'latest' (or -1), or raise 42202."""
    text = str(raw)
    if text == "latest" or text == "-1":
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_VERSION:
        raise InvalidVersion(text)
    return int(text)


class Registry:
    """The schema registry: state in memory, durability in a :class:`Storage` log."""

    def __init__(self, storage: Storage, default_level: Level = compat.DEFAULT_LEVEL) -> None:
        self.storage = storage
        self.default_level = default_level
        self.state = RegistryState()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Open the log and rebuild state by replaying it."""
        self.storage.start()
        state = RegistryState()
        for record in self.storage.replay():
            event = decode(record)
            if event is not None:
                state.apply(event)
        self.state = state

    def _commit(self, events: Sequence[Event]) -> None:
        """Write ``events`` durably, then apply them; nothing is applied if the write fails.

        State is copy-on-write: readers (not locked) always see a whole snapshot.
        """
        self.storage.append([encode(e) for e in events])
        state = self.state.copy()
        for event in events:
            state.apply(event)
        self.state = state

    # --- schemas -----------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int, subject: str | None = None) -> SchemaVersion:
        """The schema with global id ``schema_id``."""
        # ``subject`` only selects a context in Confluent (we have just the default one); it
        # does not require the id to be registered under that subject, and Flink relies on that.
        del subject
        found = self.state.schema_by_id(schema_id)
        if found is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return found

    def usages(self, schema_id: int, deleted: bool = False) -> list[SchemaVersion]:
        """Subject versions using ``schema_id``; 40403 if the id is unknown."""
        self.schema_by_id(schema_id)
        return self.state.usages(schema_id, deleted)

    # --- subjects ----------------------------------------------------------------------------

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        """Visible versions of ``subject``; 40401 if there are none."""
        found = self.state.versions(subject, deleted)
        if not found:
            raise SubjectNotFound(subject)
        return found

    def get_version(self, subject: str, version: str | int, deleted: bool = False) -> SchemaVersion:
        """One version of ``subject`` ('latest' allowed)."""
        number = parse_version(version)
        versions = self.versions(subject, deleted)
        if number is None:
            return versions[-1]
        for v in versions:
            if v.version == number:
                return v
        raise VersionNotFound(subject, number)

    def lookup(self, subject: str, text: str, schema_type: str | None = None,
               deleted: bool = False) -> SchemaVersion:
        """The version of ``subject`` holding this schema (whitespace-insensitive)."""
        parsed = parse_schema(text, schema_type)
        versions = self.versions(subject, deleted)
        for v in reversed(versions):
            if v.schema == parsed.canonical:
                return v
        raise SchemaNotFound(f"Schema not found under subject '{subject}'")

    def register(self, subject: str, text: str, schema_type: str | None = None,
                 references: list[object] | None = None) -> SchemaVersion:
        """Register a schema under ``subject``, or return the live version already holding it."""
        parsed = parse_schema(text, schema_type, references)
        with self._lock:
            live = self.state.versions(subject)
            for v in live:
                if v.schema == parsed.canonical:
                    return v
            messages = self._incompatibilities(subject, parsed, live)
            if messages:
                raise IncompatibleSchema(
                    f"Schema being registered is incompatible with an earlier schema for subject "
                    f"\"{subject}\", details: [{'; '.join(messages)}]"
                )
            every = self.state.versions(subject, deleted=True)
            version = (every[-1].version if every else 0) + 1
            schema_id = self.state.id_of(parsed.canonical) or self.state.max_id + 1
            new = SchemaVersion(subject, version, schema_id, parsed.canonical,
                                schema_type=parsed.schema_type)
            self._commit([new])
            return new

    def _incompatibilities(self, subject: str, parsed: ParsedSchema,
                           against: list[SchemaVersion]) -> list[str]:
        """Messages explaining why ``parsed`` breaks the subject's level against ``against``."""
        level = self.level(subject)
        earlier = [(v.version, parse_schema(v.schema, v.schema_type).parsed) for v in against]
        return compat.check(parsed.parsed, earlier, level)

    def test_compatibility(self, subject: str, text: str, schema_type: str | None = None,
                           version: str | None = None) -> list[str]:
        """Incompatibility messages against one version, or against the level's set if None."""
        parsed = parse_schema(text, schema_type)
        if version is None:
            return self._incompatibilities(subject, parsed, self.state.versions(subject))
        target = self.get_version(subject, version)
        level = self.level(subject)
        if level is Level.NONE:
            return []
        one = [(target.version, parse_schema(target.schema, target.schema_type).parsed)]
        return compat.check(parsed.parsed, one, Level(level.value.replace("_TRANSITIVE", "")))

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every live version, or purge a soft-deleted subject; returns versions."""
        with self._lock:
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise SubjectNotFound(subject)
            live = [v for v in every if not v.deleted]
            if permanent:
                if live:
                    raise SubjectNotSoftDeleted(
                        f"Subject '{subject}' was not deleted first before being permanently deleted"
                    )
                events: list[Event] = [VersionPurge(subject, v.version) for v in every]
                events.append(IdWatermark(self.state.max_id))
                if subject in self.state.configs:
                    events.append(ConfigChange(subject, None))
                self._commit(events)
                return [v.version for v in every]
            if not live:
                raise SubjectSoftDeleted(
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
                )
            self._commit([_soft(v) for v in live])
            return [v.version for v in live]

    def delete_version(self, subject: str, version: str, permanent: bool = False) -> int:
        """Soft-delete one version, or purge a soft-deleted one; returns its number."""
        number = parse_version(version)
        with self._lock:
            every = self.state.versions(subject, deleted=True)
            if not every:
                raise SubjectNotFound(subject)
            if number is None:
                live = [v for v in every if not v.deleted]
                target = live[-1] if live else None
            else:
                target = next((v for v in every if v.version == number), None)
            if target is None:
                raise VersionNotFound(subject, version)
            if permanent:
                if not target.deleted:
                    raise VersionNotSoftDeleted(
                        f"Subject '{subject}' Version {target.version} was not deleted first "
                        "before being permanently deleted"
                    )
                purge = VersionPurge(subject, target.version)
                self._commit([purge, IdWatermark(self.state.max_id)])
            else:
                if target.deleted:
                    raise VersionSoftDeleted(
                        f"Subject '{subject}' Version {target.version} was soft deleted. "
                        "Set permanent=true to delete permanently"
                    )
                self._commit([_soft(target)])
            return target.version

    # --- config ------------------------------------------------------------------------------

    def level(self, subject: str | None = None) -> Level:
        """Effective level: the subject's, else the global one, else the default."""
        raw = self.state.configs.get(subject) if subject is not None else None
        raw = raw or self.state.configs.get(None)
        return Level(raw) if raw else self.default_level

    def subject_level(self, subject: str, default_to_global: bool = False) -> Level:
        """The subject-level setting; 40408 unless set or ``default_to_global``."""
        raw = self.state.configs.get(subject)
        if raw:
            return Level(raw)
        if default_to_global:
            return self.level(None)
        raise SubjectConfigNotFound(subject)

    def set_level(self, subject: str | None, level: object) -> Level:
        """Set the global (``subject=None``) or a subject's compatibility level."""
        parsed = Level.parse(level)
        with self._lock:
            self._commit([ConfigChange(subject, parsed.value)])
        return parsed

    def delete_level(self, subject: str | None) -> Level:
        """Clear a subject's (or the global) setting; returns the level that was in force."""
        with self._lock:
            previous = self.state.configs.get(subject)
            if previous is None:
                if subject is None:
                    return self.default_level
                raise SubjectConfigNotFound(subject)
            self._commit([ConfigChange(subject, None)])
            return Level(previous)


def _soft(version: SchemaVersion) -> SchemaVersion:
    """The same version marked soft-deleted."""
    return SchemaVersion(version.subject, version.version, version.schema_id, version.schema,
                         deleted=True, schema_type=version.schema_type)
