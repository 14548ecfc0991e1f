"""serving.auth: a token's signature is verified once, but its expiry on every call."""

from __future__ import annotations

import time

import jwt
import pytest

from core.settings import Settings
from serving.auth import InvalidToken, _verified, mint_token, verify_token


def test_cached_token_still_expires_and_bad_tokens_are_never_cached() -> None:
    s = Settings(jwt_secret="e" * 40, jwt_leeway_s=0)
    token = mint_token("erin", s, 60)
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    assert verify_token(token, s) == "erin"
    hits = _verified.cache_info().hits
    assert verify_token(token, s, now=exp - 1) == "erin"
    assert _verified.cache_info().hits == hits + 1  # served from the cache
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, s, now=exp + 1)  # a cached token expires all the same
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):  # a failure is raised each time, never remembered as valid
        with pytest.raises(InvalidToken):
            verify_token(forged, s)
    with pytest.raises(InvalidToken):
        verify_token(token, Settings(jwt_secret="f" * 40))  # the key is part of the cache key


def test_expired_token_is_refused_before_it_is_cached() -> None:
    s = Settings(jwt_secret="g" * 40, jwt_leeway_s=0)
    old = jwt.encode({"sub": "gus", "exp": int(time.time()) - 10}, s.signing_secret(), algorithm="HS256")
    with pytest.raises(InvalidToken):
        verify_token(old, s)
