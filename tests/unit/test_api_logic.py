"""Pure pieces of the write API: tags, tokens, settings, fingerprints, Retry-After."""

from __future__ import annotations

import pytest

from core.settings import PLACEHOLDER_SECRET, Settings
from serving.auth import InvalidToken, mint_token, verify_token
from serving.idempotency import fingerprint
from serving.payloads import PostIn, extract_tags
from serving.ratelimit import retry_after_s


def test_extract_tags_dedups_lowercases_and_ignores_emails() -> None:
    tags, mentions = extract_tags("Hi @Bob and @bob! #Kafka #kafka #streams mail me a@b.com x#y")
    assert tags == ["kafka", "streams"]
    assert mentions == ["bob"]


def test_post_event_fields_match_the_event_schema() -> None:
    from support.serde import mock_serde

    body = PostIn.model_validate({"text": "hello #world @ann", "visibility": "FRIENDS",
                                  "media": [{"kind": "VIDEO", "url": "https://v.example/x.mp4", "duration_ms": 9}]})
    value = {"event_id": "e", "occurred_at": 1, "actor_id": "a", "schema_version": 1,
             "post_id": 7, "author_id": "a", **body.event_fields()}
    mock_serde().validate("PostCreated", value)  # raises if a field does not fit
    assert value["hashtags"] == ["world"] and value["mentions"] == ["ann"]


def test_tokens_round_trip_and_reject_other_keys() -> None:
    a = Settings(env="test", jwt_secret="a" * 40)
    b = Settings(env="test", jwt_secret="b" * 40)
    token = mint_token("alice", a)
    assert verify_token(token, a) == "alice"
    with pytest.raises(InvalidToken):
        verify_token(token, b)


@pytest.mark.parametrize("env", ["production"])
def test_placeholder_secret_refused_where_it_signs_outside_development(env: str) -> None:
    from core.settings import PlaceholderSecret
    from serving.app import create_app

    s = Settings(env=env, jwt_secret=PLACEHOLDER_SECRET)  # workers and the registry never sign: accepted
    with pytest.raises(PlaceholderSecret, match="placeholder"):
        s.signing_secret()
    with pytest.raises(PlaceholderSecret, match="placeholder"):
        mint_token("alice", s)
    with pytest.raises(PlaceholderSecret, match="placeholder"):
        create_app(s)  # the API refuses to start with it
    assert Settings(env=env, jwt_secret="x" * 40).signing_secret() == "x" * 40
    assert Settings(env="development").signing_secret() == PLACEHOLDER_SECRET


def test_fingerprint_depends_on_method_path_and_body() -> None:
    base = fingerprint("POST", "/v1/posts", b'{"text":"a"}')
    assert base == fingerprint("POST", "/v1/posts", b'{"text":"a"}')
    assert len({base, fingerprint("PUT", "/v1/posts", b'{"text":"a"}'),
                fingerprint("POST", "/v1/posts/1", b'{"text":"a"}'),
                fingerprint("POST", "/v1/posts", b'{"text":"b"}')}) == 4


@pytest.mark.parametrize("wait_ms,expected", [(1, 1), (999, 1), (1000, 1), (1001, 2), (5500, 6)])
def test_retry_after_is_whole_seconds_never_zero(wait_ms: int, expected: int) -> None:
    assert retry_after_s(wait_ms) == expected


def test_dev_token_command_mints_a_token_for_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from core.settings import get_settings
    from feedstream.cli import app

    monkeypatch.setenv("FEEDSTREAM_JWT_SECRET", "c" * 40)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["dev", "token", "carol", "--ttl", "60"])
        assert result.exit_code == 0, result.output
        assert verify_token(result.output.strip(), Settings(jwt_secret="c" * 40)) == "carol"
        with pytest.raises(InvalidToken):
            verify_token(result.output.strip(), Settings(jwt_secret="d" * 40))
    finally:
        get_settings.cache_clear()
