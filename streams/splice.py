"""Avro records of one schema that differ only in a few string fields: encoded once, then spliced.

A fan-out batch emits one TimelineUpdate per delivery, and the updates of one post differ only in
``event_id`` and ``reader_id``. :class:`Spliced` encodes the record once with fastavro, with a
sentinel in each varying string field, and keeps the bytes between the sentinels; each record is
then those bytes joined with its own strings' Avro encoding (zig-zag varint length + UTF-8): the
same bytes fastavro writes, without walking the schema per record.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import fastavro


def avro_long(n: int) -> bytes:
    """Avro's zig-zag varint encoding of a long."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def avro_string(s: str) -> bytes:
    """Avro's encoding of a string: its UTF-8 length as a long, then the bytes."""
    raw = s.encode()
    return avro_long(len(raw)) + raw


class Spliced:
    """Encoder of ``value``'s record (parsed schema ``parsed``) with the string fields ``varying``
    replaced per call of :meth:`encode` (fields of type ``string`` only)."""

    def __init__(self, parsed: Any, value: Mapping[str, Any], varying: Sequence[str]) -> None:
        marks = {name: f"\x00splice:{i}:{name}\x00" for i, name in enumerate(varying)}
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, {**value, **marks})
        raw = out.getvalue()
        at = []
        for name, mark in marks.items():
            enc = avro_string(mark)
            pos = raw.find(enc)
            if pos < 0 or raw.find(enc, pos + 1) >= 0:
                raise ValueError(f"field {name!r} is not a plain string field of the record")
            at.append((pos, pos + len(enc), name))
        at.sort()
        self.order = [name for _, _, name in at]
        bounds = [0, *[x for start, end, _ in at for x in (start, end)], len(raw)]
        self.parts = [raw[bounds[i]:bounds[i + 1]] for i in range(0, len(bounds), 2)]

    def encode(self, values: Mapping[str, str]) -> bytes:
        """The record's Avro binary with ``values`` in the varying fields."""
        out = [self.parts[0]]
        for name, part in zip(self.order, self.parts[1:]):
            out.append(avro_string(values[name]))
            out.append(part)
        return b"".join(out)
