"""Every .avsc parses, carries the envelope, and shared named types are defined once."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse as avro_parse

from streams.errors import SchemaError
from streams.schemas import ENVELOPE, SCHEMA_DIR, default_schemas, load_schemas

pytestmark = pytest.mark.unit
FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
SCHEMAS = default_schemas()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_file_is_json_and_named_after_its_type(path: Path) -> None:
    node = json.loads(path.read_text())
    assert path.stem == f"{node['namespace']}.{node['name']}"
    assert node["namespace"] in ("io.feedstream.events", "io.feedstream.derived")


@pytest.mark.parametrize("name", SCHEMAS.events)
def test_every_event_parses_standalone_in_fastavro_and_apache_avro(name: str) -> None:
    text = SCHEMAS.schema_str(name)
    fastavro.parse_schema(json.loads(text))
    assert avro_parse(text).fullname == name  # the Java-compatible parser (the registry's checker)


@pytest.mark.parametrize("name", SCHEMAS.events)
def test_every_event_starts_with_the_envelope(name: str) -> None:
    fields = SCHEMAS.standalone[name]["fields"]
    assert tuple(f["name"] for f in fields[:5]) == ENVELOPE
    assert fields[1]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert fields[3]["default"] == 1
    # the type is in the record (stock readers see it), defaulting to the record's own short name
    assert fields[4] == {**fields[4], "type": "string", "default": name.rpartition(".")[2]}


@pytest.mark.parametrize("name", SCHEMAS.events)
def test_adding_event_type_is_full_transitive_compatible(name: str) -> None:
    without = copy.deepcopy(SCHEMAS.standalone[name])
    without["fields"] = [f for f in without["fields"] if f["name"] != "event_type"]
    old, new = avro_parse(json.dumps(without)), avro_parse(SCHEMAS.schema_str(name))
    # FULL: each reads what the other wrote (the registry's own check runs in tests/integration)
    checker = ReaderWriterCompatibilityChecker()
    for reader, writer in ((new, old), (old, new)):
        result = checker.get_compatibility(reader, writer)
        assert result.compatibility is SchemaCompatibilityType.compatible, result.messages


def test_event_type_as_an_enum_would_not_read_the_log() -> None:
    """Why ``event_type`` stays a string (README, "Which event is this?"): Avro resolves no
    string -> enum, so an enum-typed field could not read the records already in the log."""
    name = "io.feedstream.events.PostEdited"
    as_enum = copy.deepcopy(SCHEMAS.standalone[name])
    slot = next(f for f in as_enum["fields"] if f["name"] == "event_type")
    slot["type"] = {"type": "enum", "name": "PostEditedType", "symbols": ["PostEdited"]}
    reader, writer = avro_parse(json.dumps(as_enum)), avro_parse(SCHEMAS.schema_str(name))
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    assert result.compatibility is SchemaCompatibilityType.incompatible


@pytest.mark.parametrize("name", SCHEMAS.events)
def test_optional_fields_are_null_unions_defaulting_to_null(name: str) -> None:
    for field in SCHEMAS.standalone[name]["fields"]:
        if isinstance(field["type"], list):
            assert field["type"][0] == "null" and field["default"] is None, field["name"]


def test_the_contract_field_types() -> None:
    def field(record: str, name: str):
        fields = SCHEMAS.standalone[SCHEMAS.fullname(record)]["fields"]
        return next(f["type"] for f in fields if f["name"] == name)

    assert field("PostCreated", "post_id") == "long"
    assert field("CommentAdded", "comment_id") == "long"
    assert field("CommentAdded", "parent_comment_id") == ["null", "long"]
    assert field("Liked", "post_id") == "long"
    assert field("UserRegistered", "user_id") == "string"
    assert field("PostCreated", "visibility")["symbols"] == ["PUBLIC", "FOLLOWERS", "FRIENDS"]
    assert field("ReactionAdded", "kind")["symbols"] == ["LIKE", "LOVE", "HAHA", "WOW", "SAD", "ANGRY"]
    assert field("EngagementCount", "reactions") == {"type": "map", "values": "long"}
    assert field("DeadLetter", "value") == ["null", "bytes"]


def test_shared_named_types_are_defined_once_and_inlined_per_record() -> None:
    files = [p.stem for p in FILES]
    for shared in ("MediaRef", "Visibility", "ReactionKind"):
        assert files.count(f"io.feedstream.events.{shared}") == 1
        assert sum(json.dumps(json.loads(p.read_text())).count(f'"name": "{shared}"') for p in FILES) == 1
    created = SCHEMAS.schema_str("PostCreated")
    assert created.count('"name":"io.feedstream.events.MediaRef"') == 1
    assert "io.feedstream.events.Visibility" in created


def test_short_names_are_unique_and_resolve() -> None:
    assert SCHEMAS.fullname("PostCreated") == "io.feedstream.events.PostCreated"
    assert SCHEMAS.fullname("io.feedstream.derived.DeadLetter") == "io.feedstream.derived.DeadLetter"


def test_loader_rejects_duplicates_and_unknown_references(tmp_path: Path) -> None:
    enum = {"type": "enum", "name": "E", "namespace": "t", "symbols": ["A"]}
    (tmp_path / "t.E.avsc").write_text(json.dumps(enum))
    rec = {"type": "record", "name": "R", "namespace": "t", "fields": [{"name": "e", "type": "E"}]}
    (tmp_path / "t.R.avsc").write_text(json.dumps(rec))
    assert load_schemas(tmp_path).standalone["t.R"]["fields"][0]["type"]["symbols"] == ["A"]
    bad = {**rec, "name": "S", "fields": [{"name": "x", "type": "Missing"}]}
    (tmp_path / "t.S.avsc").write_text(json.dumps(bad))
    with pytest.raises(SchemaError, match="t.Missing"):
        load_schemas(tmp_path)
    (tmp_path / "t.S.avsc").write_text(json.dumps({**rec, "name": "S", "fields": [{"name": "e", "type": enum}]}))
    with pytest.raises(SchemaError, match="defined twice"):
        load_schemas(tmp_path)


def test_the_moderation_contracts() -> None:
    def names(record: str) -> list[str]:
        return [f["name"] for f in SCHEMAS.standalone[SCHEMAS.fullname(record)]["fields"]]

    verdict = SCHEMAS.standalone[SCHEMAS.fullname("ModerationVerdict")]["fields"]
    decision = next(f["type"] for f in verdict if f["name"] == "decision")
    assert decision["symbols"] == ["ALLOW", "LIMIT", "REMOVE"]
    assert next(f["type"] for f in verdict if f["name"] == "scores") == {"type": "map", "values": "double"}
    for field in ("content_key", "reasons", "model_version", "source", "needs_review"):
        assert field in names("ModerationVerdict")
    for record in ("ModeratorDecided", "ContentReported", "DecisionAppealed"):
        assert {"content_key", "post_id", "author_id", "reason"} <= set(names(record))
