"""Opaque keyset cursors: a position signed with HMAC-SHA256 and bound to a reader and a list.

A cursor is ``base64url(json payload) + "." + base64url(mac[:16])``. The payload names the list
(``scope``, e.g. ``feed:alice``) and the keyset position (``before``: items strictly below it are
next), so a cursor from another user, another list, or with any byte changed is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

import orjson

VERSION = 1


class BadCursor(ValueError):
    """The cursor is malformed, tampered with, or belongs to another list."""


@dataclass(frozen=True)
class Position:
    """Where the next page starts: strictly below ``before`` (an id or a sort key)."""

    before: int | str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Encode and verify cursors with a key derived from the API secret."""

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(raw, b"feedstream-cursor-v1", hashlib.sha256).digest()

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, scope: str, pos: Position) -> str:
        """The opaque cursor for ``pos`` in list ``scope``."""
        body = orjson.dumps({"v": VERSION, "s": scope, "b": pos.before})
        return f"{_b64(body)}.{_b64(self._mac(body))}"

    def decode(self, scope: str, cursor: str) -> Position:
        """The position in ``cursor``; raise :class:`BadCursor` unless it is ours and for ``scope``."""
        if not isinstance(cursor, str) or len(cursor) > 512 or cursor.count(".") != 1:
            raise BadCursor("malformed cursor")
        body_txt, mac_txt = cursor.split(".")
        try:
            body, mac = _unb64(body_txt), _unb64(mac_txt)
        except (ValueError, TypeError) as exc:
            raise BadCursor("malformed cursor") from exc
        if not hmac.compare_digest(mac, self._mac(body)):
            raise BadCursor("cursor signature mismatch")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise BadCursor("malformed cursor") from exc
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise BadCursor("unsupported cursor version")
        if data.get("s") != scope:
            raise BadCursor("cursor belongs to another list")
        before = data.get("b")
        if isinstance(before, bool) or not isinstance(before, (int, str)):
            raise BadCursor("malformed cursor position")
        return Position(before)
