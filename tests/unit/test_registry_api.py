"""The registry's REST API on in-memory storage: Confluent paths, bodies and error codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from streams.registry.app import create_app
from streams.registry.storage import MemoryStorage

pytestmark = pytest.mark.unit
VND = "application/vnd.schemaregistry.v1+json"


def schema(*fields: tuple[str, Any], name: str = "Post") -> str:
    body = {"type": "record", "name": name, "namespace": "feedstream",
            "fields": [{"name": n, "type": t} | ({"default": d} if d is not ... else {})
                       for n, t, d in ((f[0], f[1], f[2] if len(f) > 2 else ...) for f in fields)]}
    return json.dumps(body)


V1 = schema(("id", "string"), ("likes", "int"))
V2 = schema(("id", "string"), ("likes", "int"), ("lang", ["null", "string"], None))


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app(MemoryStorage()))


def post(client: TestClient, path: str, body: dict[str, Any], **params: Any) -> Any:
    return client.post(path, content=json.dumps(body), params=params,
                       headers={"Content-Type": VND, "Accept": VND})


def register(client: TestClient, subject: str, text: str) -> Any:
    return post(client, f"/subjects/{subject}/versions", {"schema": text})


def test_root_types_health_and_content_types(client: TestClient) -> None:
    r = client.get("/")
    assert r.json() == {} and r.headers["content-type"] == VND
    assert client.get("/", headers={"Accept": "application/json"}).headers["content-type"] == (
        "application/json")
    assert client.get("/schemas/types").json() == ["AVRO"]
    assert client.get("/health").json()["status"] == "ok"


def test_register_is_idempotent_and_whitespace_insensitive(client: TestClient) -> None:
    assert register(client, "posts-value", V1).json() == {"id": 1}
    pretty = json.dumps(json.loads(V1), indent=4)
    assert register(client, "posts-value", pretty).json() == {"id": 1}
    assert client.get("/subjects/posts-value/versions").json() == [1]


def test_same_schema_under_another_subject_reuses_the_global_id(client: TestClient) -> None:
    assert register(client, "a-value", V1).json() == {"id": 1}
    assert register(client, "b-value", V1).json() == {"id": 1}
    assert register(client, "b-value", V2).json() == {"id": 2}
    assert client.get("/subjects").json() == ["a-value", "b-value"]
    assert client.get("/schemas/ids/1/versions").json() == [
        {"subject": "a-value", "version": 1}, {"subject": "b-value", "version": 1}]
    assert client.get("/schemas/ids/1/subjects").json() == ["a-value", "b-value"]


def test_versions_ids_and_raw_schema(client: TestClient) -> None:
    register(client, "posts-value", V1)
    register(client, "posts-value", V2)
    latest = client.get("/subjects/posts-value/versions/latest").json()
    assert latest == {"subject": "posts-value", "version": 2, "id": 2,
                      "schema": json.dumps(json.loads(V2), separators=(",", ":"))}
    assert client.get("/subjects/posts-value/versions/1").json()["id"] == 1
    assert client.get("/subjects/posts-value/versions/-1").json()["version"] == 2
    assert json.loads(client.get("/subjects/posts-value/versions/1/schema").text) == json.loads(V1)
    assert json.loads(client.get("/schemas/ids/2").json()["schema"]) == json.loads(V2)
    assert client.get("/schemas/ids/2", params={"subject": "posts-value"}).status_code == 200
    # like Confluent, ?subject= picks a context, it does not filter (Flink passes its own subject)
    assert client.get("/schemas/ids/2", params={"subject": "x"}).status_code == 200


def test_lookup(client: TestClient) -> None:
    register(client, "posts-value", V1)
    found = post(client, "/subjects/posts-value", {"schema": json.dumps(json.loads(V1), indent=2)})
    assert found.status_code == 200 and found.json()["version"] == 1 and found.json()["id"] == 1
    assert post(client, "/subjects/posts-value", {"schema": V2}).json()["error_code"] == 40403
    assert post(client, "/subjects/nobody", {"schema": V1}).json()["error_code"] == 40401


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/subjects/nobody/versions", 404, 40401),
        ("/subjects/nobody/versions/latest", 404, 40401),
        ("/subjects/posts-value/versions/9", 404, 40402),
        ("/schemas/ids/99", 404, 40403),
        ("/subjects/posts-value/versions/0", 422, 42202),
        ("/subjects/posts-value/versions/abc", 422, 42202),
        ("/config/posts-value", 404, 40408),
        ("/no/such/route", 404, 404),
    ],
)
def test_read_errors(client: TestClient, path: str, status: int, code: int) -> None:
    register(client, "posts-value", V1)
    r = client.get(path)
    assert (r.status_code, r.json()["error_code"]) == (status, code)
    assert r.json()["message"]


@pytest.mark.parametrize(
    ("body", "code", "match"),
    [
        ({"schema": "{not json"}, 42201, "not valid JSON"),
        ({"schema": '{"type":"record","name":"X"}'}, 42201, "Invalid schema"),
        ({"schema": '{"type":"object"}', "schemaType": "JSON"}, 42201, "only AVRO"),
        ({"schema": "syntax='proto3';", "schemaType": "PROTOBUF"}, 42201, "only AVRO"),
        ({"schema": '"int"', "references": [{"name": "x", "subject": "y", "version": 1}]},
         42201, "references"),
        ({"nothing": 1}, 422, "schema"),
    ],
)
def test_invalid_registrations(client: TestClient, body: dict[str, Any], code: int,
                               match: str) -> None:
    r = post(client, "/subjects/s/versions", body)
    assert r.status_code == 422 and r.json()["error_code"] == code
    assert match in r.json()["message"]


def test_backward_by_default_accepts_optional_field(client: TestClient) -> None:
    register(client, "posts-value", V1)
    assert register(client, "posts-value", V2).status_code == 200


def test_incompatible_registrations_are_409_with_clear_messages(client: TestClient) -> None:
    register(client, "posts-value", V1)
    added = register(client, "posts-value", schema(("id", "string"), ("likes", "int"),
                                                   ("lang", "string")))
    assert added.status_code == 409 and added.json()["error_code"] == 409
    assert "field 'lang' was added without a default" in added.json()["message"]
    changed = register(client, "posts-value", schema(("id", "string"), ("likes", "string")))
    assert changed.status_code == 409
    assert "field 'likes' changed type from int to string" in changed.json()["message"]
    assert client.get("/subjects/posts-value/versions").json() == [1]


def test_removed_field_without_default_rejected_under_full(client: TestClient) -> None:
    register(client, "posts-value", V1)
    client.put("/config/posts-value", json={"compatibility": "FULL"})
    r = register(client, "posts-value", schema(("id", "string")))
    assert r.status_code == 409
    assert "field 'likes' was removed without a default" in r.json()["message"]


def test_config_global_and_per_subject(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.put("/config", json={"compatibility": "full"}).json() == {"compatibility": "FULL"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.put("/config/s", json={"compatibility": "NONE"}).json() == {
        "compatibility": "NONE"}
    assert client.get("/config/s").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/config/t", params={"defaultToGlobal": "true"}).json() == {
        "compatibilityLevel": "FULL"}
    assert client.delete("/config/s").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/config/s").json()["error_code"] == 40408
    bad = client.put("/config", json={"compatibility": "SIDEWAYS"})
    assert bad.status_code == 422 and bad.json()["error_code"] == 42203


def test_subject_level_none_allows_anything(client: TestClient) -> None:
    register(client, "s", V1)
    client.put("/config/s", json={"compatibility": "NONE"})
    assert register(client, "s", schema(("other", "boolean"))).json() == {"id": 2}


def test_compatibility_endpoint(client: TestClient) -> None:
    register(client, "s", V1)
    ok = post(client, "/compatibility/subjects/s/versions/latest", {"schema": V2})
    assert ok.json() == {"is_compatible": True}
    bad = post(client, "/compatibility/subjects/s/versions/1",
               {"schema": schema(("id", "int"))}, verbose="true")
    assert bad.json()["is_compatible"] is False
    assert any("field 'id' changed type from string to int" in m for m in bad.json()["messages"])
    assert post(client, "/compatibility/subjects/s/versions", {"schema": V2},
                verbose="True").json() == {"is_compatible": True, "messages": []}
    missing = post(client, "/compatibility/subjects/nobody/versions/latest", {"schema": V1})
    assert missing.json()["error_code"] == 40401
    assert post(client, "/compatibility/subjects/s/versions/7", {"schema": V1}).json()[
        "error_code"] == 40402


def test_soft_and_permanent_deletes(client: TestClient) -> None:
    register(client, "s", V1)
    register(client, "s", V2)
    assert client.delete("/subjects/s/versions/2", params={"permanent": "true"}).json()[
        "error_code"] == 40407
    assert client.delete("/subjects/s/versions/latest").json() == 2
    assert client.get("/subjects/s/versions").json() == [1]
    assert client.get("/subjects/s/versions", params={"deleted": "true"}).json() == [1, 2]
    assert client.get("/subjects/s/versions/2").json()["error_code"] == 40402
    assert client.get("/subjects/s/versions/2", params={"deleted": "true"}).json()["id"] == 2
    assert client.get("/schemas/ids/2").status_code == 200, "ids stay readable after soft delete"
    assert client.delete("/subjects/s/versions/2").json()["error_code"] == 40406
    assert client.delete("/subjects/s/versions/2", params={"permanent": "true"}).json() == 2
    assert client.delete("/subjects/s", params={"permanent": "true"}).json()["error_code"] == 40405
    assert client.delete("/subjects/s").json() == [1]
    assert client.get("/subjects").json() == []
    assert client.delete("/subjects/s").json()["error_code"] == 40404
    # re-registering a soft-deleted schema gives a new version (after the highest one still
    # stored, soft-deleted included; version 2 was purged) with the same id
    assert register(client, "s", V1).json() == {"id": 1}
    assert client.get("/subjects/s/versions").json() == [2]
    assert client.delete("/subjects/nobody").json()["error_code"] == 40401


def test_body_without_content_type_is_accepted(client: TestClient) -> None:
    r = client.post("/subjects/s/versions", content=json.dumps({"schema": V1}))
    assert r.json() == {"id": 1}
    assert client.post("/subjects/s/versions", content=b"nope").json()["error_code"] == 422


def test_concurrent_registrations_get_consistent_ids(client: TestClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(i: int) -> tuple[int, int]:
        same = register(client, f"s{i}", V1).json()["id"]
        own = register(client, f"own{i}", schema((f"f{i}", "int"))).json()["id"]
        client.get("/subjects")
        client.get(f"/schemas/ids/{same}/versions")
        return same, own

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(24)))
    assert {same for same, _ in results} == {1}
    owns = [own for _, own in results]
    assert len(set(owns)) == 24 and set(owns) == set(range(2, 26))
