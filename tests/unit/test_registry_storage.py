"""The storage contract on the in-memory backend, plus the log record encoding."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streams.registry.contract import StorageContract
from streams.registry.errors import StorageError
from streams.registry.records import (
    ConfigChange,
    IdWatermark,
    SchemaVersion,
    StoredRecord,
    VersionPurge,
    decode,
    encode,
)
from streams.registry.storage import MemoryLog, MemoryStorage, Storage

pytestmark = pytest.mark.unit


@pytest.fixture
def open_storage() -> Callable[[], Storage]:
    """Fresh in-memory storages sharing one log, so a second one is a 'restart'."""
    log = MemoryLog()
    return lambda: MemoryStorage(log)


class TestMemoryStorageContract(StorageContract):
    """Every contract test, against :class:`MemoryStorage`."""


@pytest.mark.parametrize(
    "event",
    [
        SchemaVersion("s", 3, 7, '{"type":"string"}'),
        SchemaVersion("s", 3, 7, '"int"', deleted=True),
        VersionPurge("s", 3),
        ConfigChange(None, "FULL"),
        ConfigChange("s", "NONE"),
        ConfigChange("s", None),
        IdWatermark(12),
    ],
)
def test_records_round_trip(event: object) -> None:
    assert decode(encode(event)) == event  # type: ignore[arg-type]


def test_record_keys_are_byte_stable_for_compaction() -> None:
    a = encode(SchemaVersion("s", 1, 1, '"int"'))
    b = encode(SchemaVersion("s", 1, 1, '"int"', deleted=True))
    assert a.key == b.key == b'{"keytype":"SCHEMA","subject":"s","version":1,"magic":1}'
    assert encode(VersionPurge("s", 1)) == StoredRecord(a.key, None)


def test_unknown_record_types_are_skipped_and_garbage_is_loud() -> None:
    assert decode(StoredRecord(b'{"keytype":"NOOP","magic":0}', b"{}")) is None
    with pytest.raises(StorageError, match="Corrupt registry record"):
        decode(StoredRecord(b"not json", b"{}"))


def test_failed_append_is_not_applied_nor_acknowledged() -> None:
    from fastapi.testclient import TestClient

    from streams.registry.app import create_app

    log = MemoryLog()
    client = TestClient(create_app(MemoryStorage(log)))
    log.fail_next_append = True
    r = client.post("/subjects/s/versions", json={"schema": '"string"'})
    assert r.status_code == 500 and r.json()["error_code"] == 50001
    assert client.get("/subjects").json() == []
    assert client.post("/subjects/s/versions", json={"schema": '"string"'}).json() == {"id": 1}
