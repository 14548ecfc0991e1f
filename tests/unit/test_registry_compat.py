"""Schema canonicalization and compatibility messages (pure functions)."""

from __future__ import annotations

import json

import avro.schema
import pytest

from streams.registry.compat import Level, check
from streams.registry.errors import InvalidCompatibilityLevel, InvalidSchema
from streams.registry.schemas import parse_schema

pytestmark = pytest.mark.unit


def rec(*fields: dict[str, object], name: str = "Post") -> avro.schema.Schema:
    return avro.schema.parse(json.dumps({"type": "record", "name": name, "fields": list(fields)}))


OLD = rec({"name": "id", "type": "string"}, {"name": "likes", "type": "int"})


def test_canonical_form_ignores_whitespace_and_key_order() -> None:
    a = '{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}'
    b = '{ "fields" : [ { "type" : {"type": "int"}, "name" : "x" } ],\n "name": "A", "type": "record" }'
    assert parse_schema(a).canonical == parse_schema(b).canonical == a


def test_canonical_form_keeps_defaults_docs_and_logical_types() -> None:
    text = json.dumps({"type": "record", "name": "A", "doc": "d", "fields": [
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "n", "type": ["null", "string"], "default": None, "doc": "maybe"},
    ]})
    assert json.loads(parse_schema(text).canonical) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "kind", "match"),
    [
        ("{not json", None, "not valid JSON"),
        ('{"type":"record","name":"A"}', None, "Invalid schema"),
        ('{"type":"record","name":"A","fields":[{"name":"a","type":"int","default":"x"}]}',
         None, "Default value"),
        ('{"type":"record","name":"A","fields":[{"name":"a","type":["null","int"],"default":1}]}',
         None, "first branch 'null'"),
        ('{"type":"object"}', "JSON", "only AVRO"),
        ("syntax = 'proto3';", "PROTOBUF", "only AVRO"),
    ],
)
def test_invalid_schemas_are_rejected_clearly(text: str, kind: str | None, match: str) -> None:
    with pytest.raises(InvalidSchema, match=match):
        parse_schema(text, kind)


def test_backward_accepts_optional_field_with_default() -> None:
    new = rec({"name": "id", "type": "string"}, {"name": "likes", "type": "int"},
              {"name": "lang", "type": ["null", "string"], "default": None})
    assert check(new, [(1, OLD)], Level.BACKWARD) == []


def test_backward_rejects_new_field_without_default() -> None:
    new = rec({"name": "id", "type": "string"}, {"name": "likes", "type": "int"},
              {"name": "lang", "type": "string"})
    [msg] = check(new, [(1, OLD)], Level.BACKWARD)
    assert "field 'lang' was added without a default" in msg
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in msg and "version 1" in msg


def test_removing_a_field_without_default_is_rejected_where_old_readers_matter() -> None:
    new = rec({"name": "id", "type": "string"})
    # BACKWARD alone lets the new reader ignore the dropped field (Confluent semantics) ...
    assert check(new, [(1, OLD)], Level.BACKWARD) == []
    # ... FORWARD and FULL protect readers still on the old schema.
    for level in (Level.FORWARD, Level.FULL):
        [msg] = check(new, [(1, OLD)], level)
        assert "field 'likes' was removed without a default" in msg


def test_type_change_is_rejected_naming_the_field_and_types() -> None:
    new = rec({"name": "id", "type": "string"}, {"name": "likes", "type": "string"})
    [msg] = check(new, [(1, OLD)], Level.BACKWARD)
    assert msg.startswith("TYPE_MISMATCH: field 'likes' changed type from int to string")


def test_promotion_is_backward_but_not_forward_compatible() -> None:
    new = rec({"name": "id", "type": "string"}, {"name": "likes", "type": "long"})
    assert check(new, [(1, OLD)], Level.BACKWARD) == []
    assert "int cannot read long" in check(new, [(1, OLD)], Level.FORWARD)[0]


def test_nested_field_paths_are_reported() -> None:
    author = {"type": "record", "name": "Author", "fields": [{"name": "age", "type": "int"}]}
    author_new = {**author, "fields": [{"name": "age", "type": "boolean"}]}
    old = rec({"name": "authors", "type": {"type": "array", "items": author}})
    new = rec({"name": "authors", "type": {"type": "array", "items": author_new}})
    [msg] = check(new, [(1, old)], Level.BACKWARD)
    assert "field 'authors[].age' changed type from int to boolean" in msg


def test_enum_union_and_name_changes_name_the_incompatibility() -> None:
    enum = {"type": "enum", "name": "Vis", "symbols": ["PUBLIC", "FRIENDS"]}
    old = rec({"name": "vis", "type": enum}, {"name": "n", "type": ["null", "int"]})
    new = rec({"name": "vis", "type": {**enum, "symbols": ["PUBLIC"]}},
              {"name": "n", "type": ["null", "string"]}, name="Other")
    text = " | ".join(check(new, [(1, old)], Level.BACKWARD))
    assert "NAME_MISMATCH" in text and "MISSING_ENUM_SYMBOLS: field 'vis'" in text
    assert "MISSING_UNION_BRANCH: field 'n'" in text


def test_transitive_levels_check_every_version_others_only_the_latest() -> None:
    v1 = rec({"name": "id", "type": "string"})
    v2 = rec({"name": "id", "type": "string"}, {"name": "x", "type": "int", "default": 0})
    v3 = rec({"name": "id", "type": "string"}, {"name": "x", "type": "int"})
    assert check(v3, [(1, v1), (2, v2)], Level.BACKWARD) == []
    [msg] = check(v3, [(1, v1), (2, v2)], Level.BACKWARD_TRANSITIVE)
    assert "version 1" in msg
    assert check(v3, [(1, v1)], Level.NONE) == []


def test_levels_parse_case_insensitively_and_reject_unknown() -> None:
    assert Level.parse("full_transitive") is Level.FULL_TRANSITIVE
    with pytest.raises(InvalidCompatibilityLevel, match="Valid values are"):
        Level.parse("SIDEWAYS")
