"""The contract every :class:`Storage` backend must meet, as a reusable test class.

Subclass :class:`StorageContract` in a test module (name it ``Test...``) and provide a fixture
``open_storage``: a callable returning a new, unstarted storage over the same underlying log,
so that calling it twice simulates a registry restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient

from streams.registry.app import create_app
from streams.registry.records import StoredRecord
from streams.registry.storage import Storage

OpenStorage = Callable[[], Storage]


def _record(key: str, value: str | None) -> StoredRecord:
    return StoredRecord(key.encode(), None if value is None else value.encode())


def _fold(records: list[StoredRecord]) -> dict[bytes, bytes | None]:
    """Last value per key, tombstones dropped: what a compacted log must preserve."""
    state: dict[bytes, bytes | None] = {}
    for r in records:
        if r.value is None:
            state.pop(r.key, None)
        else:
            state[r.key] = r.value
    return state


def _schema(*fields: tuple[str, object]) -> str:
    return json.dumps({"type": "record", "name": "Evt", "namespace": "contract",
                       "fields": [{"name": n, "type": t} for n, t in fields]})


class StorageContract:
    """Behaviour shared by every storage backend (run against each one)."""

    def test_fresh_log_replays_nothing(self, open_storage: OpenStorage) -> None:
        """A new log is empty."""
        storage = open_storage()
        storage.start()
        assert list(storage.replay()) == []
        storage.close()

    def test_start_is_idempotent(self, open_storage: OpenStorage) -> None:
        """Starting twice, or on an existing log, works and loses nothing."""
        first = open_storage()
        first.start()
        first.append([_record("k", "v")])
        first.close()
        second = open_storage()
        second.start()
        second.start()
        assert [r.value for r in second.replay()] == [b"v"]
        second.ping()
        second.close()

    def test_appended_records_replay_in_order_after_reopen(self, open_storage: OpenStorage) -> None:
        """What ``append`` acknowledged is visible, in order, to a new instance."""
        writer = open_storage()
        writer.start()
        writer.append([_record("a", "1"), _record("b", "1")])
        writer.append([_record("a", "2")])
        reader = open_storage()
        reader.start()
        replayed = list(reader.replay())
        assert _fold(replayed) == {b"a": b"2", b"b": b"1"}
        assert [r.value for r in replayed if r.key == b"a"][-1] == b"2"
        writer.close()
        reader.close()

    def test_tombstones_remove_keys(self, open_storage: OpenStorage) -> None:
        """A ``None`` value deletes its key once the log is folded."""
        storage = open_storage()
        storage.start()
        storage.append([_record("a", "1"), _record("b", "1"), _record("a", None)])
        storage.close()
        again = open_storage()
        again.start()
        assert _fold(list(again.replay())) == {b"b": b"1"}
        again.close()

    def test_registry_survives_restart(self, open_storage: OpenStorage) -> None:
        """Ids, versions, soft deletes and configs come back after a restart."""
        with TestClient(create_app(open_storage())) as client:
            v1 = _schema(("a", "int"))
            v2 = _schema(("a", "int"), ("b", {"type": "string"}))
            first = client.post("/subjects/s-value/versions", json={"schema": v1}).json()["id"]
            assert client.put("/config/s-value", json={"compatibility": "NONE"}).status_code == 200
            second = client.post("/subjects/s-value/versions", json={"schema": v2}).json()["id"]
            other = client.post("/subjects/gone/versions", json={"schema": _schema(("z", "long"))})
            gone_id = other.json()["id"]
            assert client.delete("/subjects/gone").json() == [1]
            assert client.delete("/subjects/gone", params={"permanent": "true"}).json() == [1]
            client.post("/subjects/soft/versions", json={"schema": v1})
            client.delete("/subjects/soft/versions/1")
        with TestClient(create_app(open_storage())) as client:
            assert client.get("/subjects").json() == ["s-value"]
            assert client.get("/subjects", params={"deleted": "true"}).json() == ["s-value", "soft"]
            assert client.get("/subjects/s-value/versions").json() == [1, 2]
            latest = client.get("/subjects/s-value/versions/latest").json()
            assert (latest["id"], latest["version"]) == (second, 2)
            assert client.get(f"/schemas/ids/{first}").json()["schema"] == json.dumps(
                json.loads(v1), separators=(",", ":"))
            assert client.get("/config/s-value").json() == {"compatibilityLevel": "NONE"}
            assert client.get(f"/schemas/ids/{gone_id}").json()["error_code"] == 40403
            again = client.post("/subjects/s-value/versions", json={"schema": v2}).json()["id"]
            assert again == second
            fresh = client.post("/subjects/new/versions", json={"schema": _schema(("q", "int"))})
            assert fresh.json()["id"] == gone_id + 1, "ids of purged schemas are never reused"
