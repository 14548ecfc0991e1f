"""JWT bearer authentication: mint and verify HS256 tokens whose subject is the acting user id."""

from __future__ import annotations

import logging
import time
from functools import lru_cache
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.settings import Settings
from serving.settings import app_settings

_bearer = HTTPBearer(auto_error=False, description="JWT whose `sub` is your user id (`feedstream dev token USER`)")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
audit = logging.getLogger("feedstream.audit")


class InvalidToken(Exception):
    """A token is missing, malformed, expired or signed with another key."""


MODERATOR = "moderator"


def mint_token(user_id: str, settings: Settings, ttl_s: int | None = None, roles: tuple[str, ...] = ()) -> str:
    """Return a signed token for ``user_id`` valid for ``ttl_s`` seconds (settings' default), with
    ``roles`` (e.g. ``("moderator",)``) in its ``roles`` claim if given."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + (ttl_s or settings.jwt_ttl_s)}
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, settings.signing_secret(), algorithm=settings.jwt_algorithm)


@lru_cache(maxsize=65_536)
def _verified(token: str, secret: str, algorithm: str, leeway_s: int) -> tuple[str, int, frozenset[str]]:
    """Subject and expiry of a token whose signature and claims were checked once (HS256 verification
    with PyJWT costs more than a whole no-op request; a failure is raised, never cached)."""
    try:
        claims = jwt.decode(token, secret, algorithms=[algorithm], options={"require": ["sub", "exp"]},
                            leeway=leeway_s)
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    sub, exp, roles = claims["sub"], claims["exp"], claims.get("roles") or []
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("token subject must be a non-empty string")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("token roles must be a list of strings")
    return sub, int(exp), frozenset(roles)


def verify_token(token: str, settings: Settings, now: float | None = None) -> str:
    """Return the subject of a valid token; raise :class:`InvalidToken` otherwise.

    The signature is verified once per token (cached); its expiry is checked on every call.
    """
    return verify_claims(token, settings, now)[0]


def verify_claims(token: str, settings: Settings, now: float | None = None) -> tuple[str, frozenset[str]]:
    """:func:`verify_token`'s subject plus the token's roles."""
    sub, exp, roles = _verified(token, settings.signing_secret(), settings.jwt_algorithm, settings.jwt_leeway_s)
    if (time.time() if now is None else now) > exp + settings.jwt_leeway_s:
        raise InvalidToken("Signature has expired")
    return sub, roles


async def current_user(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[Settings, Depends(app_settings)],
) -> str:
    """Return the user id of the request's bearer token; 401 without a valid one."""
    if creds is None or creds.scheme.lower() != "bearer":
        audit.warning("auth failure: missing bearer token", extra={"audit": "auth_failure", "reason": "missing"})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=_CHALLENGE)
    try:
        return verify_token(creds.credentials, settings)
    except InvalidToken as exc:
        audit.warning("auth failure: invalid token: %s", exc, extra={"audit": "auth_failure", "reason": str(exc)})
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"invalid token: {exc}", headers=_CHALLENGE) from exc


async def current_moderator(
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[Settings, Depends(app_settings)],
) -> str:
    """The user id of a token carrying the ``moderator`` role; 401 without a valid token, 403 without the role."""
    user = await current_user(creds, settings)
    assert creds is not None  # current_user refused a missing token
    if MODERATOR not in verify_claims(creds.credentials, settings)[1]:
        audit.warning("moderator role refused to %s", user, extra={"audit": "moderator_refused", "user": user})
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{user!r} is not a moderator")
    return user


def require_self(user: str, acting_as: str) -> None:
    """Raise 403 unless the token's subject is the user the request acts as."""
    if user != acting_as:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token subject {user!r} may not act as {acting_as!r}")
