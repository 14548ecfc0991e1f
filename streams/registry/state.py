"""In-memory registry state rebuilt from log events; pure data, no I/O, no locking."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.registry.records import (
    ConfigChange,
    Event,
    IdWatermark,
    SchemaVersion,
    VersionPurge,
)


@dataclass
class RegistryState:
    """Subjects, versions, schema ids and configs, as the log says."""

    subjects: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    configs: dict[str | None, str] = field(default_factory=dict)
    max_id: int = 0

    def copy(self) -> RegistryState:
        """A copy that can be changed without disturbing readers of this one."""
        return RegistryState({s: dict(v) for s, v in self.subjects.items()}, dict(self.configs),
                             self.max_id)

    def apply(self, event: Event) -> None:
        """Fold one event into the state (idempotent: replaying twice changes nothing)."""
        if isinstance(event, SchemaVersion):
            self.subjects.setdefault(event.subject, {})[event.version] = event
            self.max_id = max(self.max_id, event.schema_id)
        elif isinstance(event, VersionPurge):
            versions = self.subjects.get(event.subject, {})
            versions.pop(event.version, None)
            if not versions:
                self.subjects.pop(event.subject, None)
        elif isinstance(event, ConfigChange):
            if event.level is None:
                self.configs.pop(event.subject, None)
            else:
                self.configs[event.subject] = event.level
        elif isinstance(event, IdWatermark):
            self.max_id = max(self.max_id, event.max_id)

    def versions(self, subject: str, deleted: bool = False) -> list[SchemaVersion]:
        """Versions of ``subject`` in ascending order, soft-deleted ones only if ``deleted``."""
        found = self.subjects.get(subject, {})
        return [found[v] for v in sorted(found) if deleted or not found[v].deleted]

    def subject_names(self, deleted: bool = False) -> list[str]:
        """Subjects with at least one visible version, sorted."""
        return sorted(s for s in self.subjects if self.versions(s, deleted))

    def schema_by_id(self, schema_id: int) -> SchemaVersion | None:
        """Any version carrying ``schema_id`` (soft-deleted ones included, as Confluent does)."""
        for versions in self.subjects.values():
            for version in versions.values():
                if version.schema_id == schema_id:
                    return version
        return None

    def id_of(self, canonical: str) -> int | None:
        """The global id already assigned to this canonical schema text, if any."""
        for versions in self.subjects.values():
            for version in versions.values():
                if version.schema == canonical:
                    return version.schema_id
        return None

    def usages(self, schema_id: int, deleted: bool = False) -> list[SchemaVersion]:
        """Every subject version that uses ``schema_id``, sorted by subject then version."""
        return [
            v
            for s in sorted(self.subjects)
            for v in self.versions(s, deleted)
            if v.schema_id == schema_id
        ]
