"""Wire-format round trips, validation messages and schema evolution on the in-process mock registry."""

from __future__ import annotations

import copy
import json
import struct
from datetime import UTC, datetime

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from support.serde import as_millis, mock_serde

from streams.errors import DecodeError, SchemaValidationError, StreamsError, UnknownEventError
from streams.samples import sample_event
from streams.schemas import default_schemas
from streams.serde import Serde, subject_for

pytestmark = pytest.mark.unit
SCHEMAS = default_schemas()


@pytest.fixture()
def serde() -> Serde:
    return mock_serde()


@pytest.mark.parametrize("name", SCHEMAS.events)
def test_every_event_round_trips_through_the_wire_format(serde: Serde, name: str) -> None:
    value = sample_event(name)
    data = serde.encode(name, value)
    magic, schema_id = struct.unpack(">bI", data[:5])
    assert magic == 0 and schema_id == serde.schema_id(name)
    decoded = serde.decode(data)
    assert decoded.name == name.rpartition(".")[2]
    assert as_millis(decoded.value) == value
    assert isinstance(decoded.value["occurred_at"], datetime)


@pytest.mark.parametrize("name", SCHEMAS.events)
def test_stock_avro_deserializer_reads_our_bytes(serde: Serde, name: str) -> None:
    value = sample_event(name)
    data = serde.encode(name, value)
    topic = serde.schemas.fullname(name)
    stock = AvroDeserializer(serde.registry)
    got = stock(data, SerializationContext("any-topic", MessageField.VALUE))
    assert as_millis(got) == value, topic


def test_subjects_follow_topic_record_name_strategy(serde: Serde) -> None:
    serde.encode("Liked", sample_event("Liked"))
    serde.encode("Unliked", sample_event("Unliked"))
    subjects = set(serde.registry.get_subjects())
    assert subject_for("engagements.v1", "io.feedstream.events.Liked") in subjects
    assert "engagements.v1-io.feedstream.events.Unliked" in subjects


def test_optional_fields_may_be_omitted_and_defaults_apply(serde: Serde) -> None:
    value = {k: v for k, v in sample_event("PostCreated").items()
             if k not in ("media", "links", "hashtags", "mentions", "visibility", "schema_version")}
    decoded = serde.decode(serde.encode("PostCreated", value)).value
    assert decoded["media"] == [] and decoded["visibility"] == "PUBLIC" and decoded["schema_version"] == 1


def test_datetimes_are_accepted_for_timestamp_fields(serde: Serde) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    value = sample_event("Followed", occurred_at=when)
    assert serde.decode(serde.encode("Followed", value)).value["occurred_at"] == when


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"post_id": "12"}, "post_id", "must be an integer (long), got str '12'"),
        ({"text": None}, "text", "is required, got null"),
        ({"visibility": "SECRET"}, "visibility", "must be one of PUBLIC, FOLLOWERS, FRIENDS"),
        ({"media": [{"kind": "GIF", "url": "u"}]}, "media[0].kind", "must be one of IMAGE, VIDEO"),
        ({"media": [{"kind": "IMAGE", "url": "u", "width": 1.5}]}, "media[0].width", "integer (int)"),
        ({"hashtag": ["x"]}, "hashtag", "did you mean 'hashtags'"),
        ({"hashtags": "x"}, "hashtags", "must be a list"),
        ({"occurred_at": "yesterday"}, "occurred_at", "must be an integer (long)"),
    ],
)
def test_validation_errors_name_the_field(serde: Serde, change: dict, field: str, words: str) -> None:
    value = {**sample_event("PostCreated"), **change}
    with pytest.raises(SchemaValidationError) as info:
        serde.encode("PostCreated", value)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value) and words in str(info.value)
    assert isinstance(info.value, StreamsError)


def test_missing_required_field_is_named_and_nothing_is_registered(serde: Serde) -> None:
    value = sample_event("UserRegistered")
    del value["handle"]
    with pytest.raises(SchemaValidationError, match="field 'handle' is required but missing"):
        serde.encode("UserRegistered", value)
    assert serde.registry.get_subjects() == []


def test_unknown_record_name_is_rejected(serde: Serde) -> None:
    with pytest.raises(UnknownEventError):
        serde.encode("PostLiked", {})


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (None, "no value"),
        (b"\x00\x00", "too short"),
        (b"{\"json\": true}", "magic byte"),
        (b"\x00\x00\x00\x30\x39" + b"\x02", "not in the registry"),
    ],
)
def test_undecodable_bytes_raise_decode_error(serde: Serde, data: bytes | None, words: str) -> None:
    with pytest.raises(DecodeError, match=words):
        serde.decode(data)


def test_truncated_and_padded_bodies_raise_decode_error(serde: Serde) -> None:
    data = serde.encode("PostCreated", sample_event("PostCreated"))
    with pytest.raises(DecodeError, match="bad Avro body"):
        serde.decode(data[:-10])
    with pytest.raises(DecodeError, match="trailing bytes"):
        serde.decode(data + b"\x00\x00")


def test_a_fresh_serde_fetches_unknown_writer_schemas_from_the_registry(serde: Serde) -> None:
    data = serde.encode("Shared", sample_event("Shared"))
    reader = Serde(serde.registry)
    assert reader.decode(data).name == "Shared"


def _evolved(extra_field: dict) -> dict:
    schema = copy.deepcopy(SCHEMAS.standalone["io.feedstream.events.Liked"])
    schema["fields"].append(extra_field)
    return schema


def test_newer_writer_with_added_optional_field_decodes_into_our_reader_schema(serde: Serde) -> None:
    newer = _evolved({"name": "client", "type": ["null", "string"], "default": None})
    subject = "engagements.v1-io.feedstream.events.Liked"
    schema_id = serde.registry.register_schema(subject, Schema(json.dumps(newer), "AVRO"))
    import io

    import fastavro

    value = {**sample_event("Liked"), "client": "ios"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(newer), value)
    decoded = serde.decode(struct.pack(">bI", 0, schema_id) + body.getvalue())
    assert decoded.name == "Liked" and "client" not in decoded.value
    assert decoded.value["post_id"] == value["post_id"]


def test_encode_fills_event_type_with_the_record_name(serde: Serde) -> None:
    created = {k: v for k, v in sample_event("PostCreated").items() if k != "event_type"}
    edited = {**created, "event_type": "PostCreated"}  # same fields; a wrong or stale type is overwritten
    assert serde.decode(serde.encode("PostCreated", created)).value["event_type"] == "PostCreated"
    assert serde.decode(serde.encode("PostEdited", edited)).value["event_type"] == "PostEdited"
    stock = AvroDeserializer(serde.registry)
    got = stock(serde.encode("PostEdited", created), SerializationContext("posts.v1", MessageField.VALUE))
    assert got["event_type"] == "PostEdited"


@pytest.mark.parametrize("record", ["PostCreated", "PostEdited", "Unliked", "TimelineUpdate", "DeadLetter"])
def test_old_records_without_event_type_decode_with_their_own_name(serde: Serde, record: str) -> None:
    import io

    import fastavro

    full = SCHEMAS.fullname(record)
    old = copy.deepcopy(SCHEMAS.standalone[full])
    old["fields"] = [f for f in old["fields"] if f["name"] != "event_type"]
    schema_id = serde.registry.register_schema(f"replay-{full}", Schema(json.dumps(old), "AVRO"))
    value = {k: v for k, v in sample_event(record).items() if k != "event_type"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(old), value)
    decoded = Serde(serde.registry).decode(struct.pack(">bI", 0, schema_id) + body.getvalue())
    assert decoded.name == record and decoded.value["event_type"] == record  # the reader schema's default


_text = st.text(max_size=30)
_optional = st.none() | _text


@settings(max_examples=60, deadline=None)
@given(
    text=_text, hashtags=st.lists(_text, max_size=4), visibility=st.sampled_from(["PUBLIC", "FRIENDS"]),
    width=st.none() | st.integers(0, 2**31 - 1), bio=_optional,
)
def test_property_round_trip(text: str, hashtags: list[str], visibility: str, width, bio) -> None:
    serde = _PROPERTY_SERDE
    post = sample_event("PostCreated", text=text, hashtags=hashtags, visibility=visibility,
                        media=[{"kind": "VIDEO", "url": "u", "width": width, "height": None,
                                "duration_ms": 1000, "media_id": None}])
    assert as_millis(serde.decode(serde.encode("PostCreated", post)).value) == post
    user = sample_event("UserRegistered", bio=bio)
    assert as_millis(serde.decode(serde.encode("UserRegistered", user)).value) == user


_PROPERTY_SERDE = mock_serde()
