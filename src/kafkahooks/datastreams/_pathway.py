"""The data-stream pathway context, byte-compatible with Datadog Data Streams Monitoring.

Wire form: ``hash`` as uint64 little-endian, then ``varint(zigzag(pathway_start_ms))`` and
``varint(zigzag(edge_start_ms))`` (LEB128, 7 bits a byte). Headers: ``dd-pathway-ctx-base64``
(standard base64 of those bytes, what current tracers write) and the legacy ``dd-pathway-ctx``
(the raw bytes; retried as base64 when the raw form does not decode).

Hashes are FNV-1 64 (multiply, then xor):
``node = fnv1(service + env + "".join(sorted(edge_tags)))`` and
``pathway = fnv1(le64(node) + le64(parent))``. Both are cached, so a checkpoint on a hot path
costs a dictionary lookup, not two pure-Python FNV passes; the wrapped clients' hooks cache whole
checkpoints themselves and call the uncached ``compute_*`` forms.
"""

from __future__ import annotations

import base64
import binascii
import struct
from functools import lru_cache
from typing import Any, NamedTuple

from kafkahooks._selfstats import counter

HEADER = "dd-pathway-ctx-base64"
LEGACY_HEADER = "dd-pathway-ctx"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
_U64 = struct.Struct("<Q")
_MAX_ENCODED = 64
MAX_HEADER_VALUE = 4 * ((_MAX_ENCODED + 2) // 3)
"""The longest pathway header value that can be valid (base64 of the longest raw context); longer
values are refused unread, so a hostile header never costs more than this to look at."""

decode_errors = counter("pathway_decode_errors", "Malformed data-stream pathway headers seen (each meant: new origin)")


def fnv1_64(data: bytes) -> int:
    """FNV-1 (not FNV-1a) 64-bit hash of ``data``."""
    h = _FNV_OFFSET
    for byte in data:
        h = (h * _FNV_PRIME) & _MASK
        h ^= byte
    return h


def compute_node_hash(service: str, env: str, edge_tags: tuple[str, ...]) -> int:
    """The hash of a checkpoint's node: service, env and its (sorted) edge tags (not cached)."""
    return fnv1_64((service + env + "".join(sorted(edge_tags))).encode("utf-8"))


def compute_pathway_hash(service: str, env: str, edge_tags: tuple[str, ...], parent_hash: int) -> int:
    """:func:`pathway_hash`, not cached: for callers that keep their own cache (the wrapped
    clients' hooks), so a hash is not held twice for every topic a producer writes to."""
    return fnv1_64(_U64.pack(compute_node_hash(service, env, edge_tags)) + _U64.pack(parent_hash & _MASK))


node_hash = lru_cache(maxsize=4096)(compute_node_hash)
"""The hash of a checkpoint's node: service, env and its (sorted) edge tags (cached)."""


@lru_cache(maxsize=16384)
def pathway_hash(service: str, env: str, edge_tags: tuple[str, ...], parent_hash: int) -> int:
    """The pathway hash of a checkpoint whose parent pathway hash is ``parent_hash`` (0 at an origin)."""
    return fnv1_64(_U64.pack(node_hash(service, env, edge_tags)) + _U64.pack(parent_hash & _MASK))


class PathwayContext(NamedTuple):
    """Where a payload is on its pathway: the pathway hash so far, when the pathway started, and
    when the current edge started (Unix epoch milliseconds). Immutable (a named tuple: cheap to
    create on the hot path)."""

    hash: int
    pathway_start_ms: int
    edge_start_ms: int

    def encode(self) -> bytes:
        """The raw wire bytes (normally 20)."""
        return (
            _U64.pack(self.hash & _MASK)
            + _varint(_zigzag(self.pathway_start_ms))
            + _varint(_zigzag(self.edge_start_ms))
        )

    def encode_b64(self) -> bytes:
        """The ``dd-pathway-ctx-base64`` header value."""
        return base64.b64encode(self.encode())


def _zigzag(v: int) -> int:
    return ((v << 1) ^ (v >> 63)) & _MASK


def _unzigzag(v: int) -> int:
    return (v >> 1) ^ -(v & 1)


def _varint(v: int) -> bytes:
    """LEB128 of ``v`` (not negative). A zigzagged Unix time in milliseconds (42 bits from 2004
    to 2109) takes six bytes, computed in one expression: a producer encodes one per batch."""
    if (1 << 35) <= v < (1 << 42):
        return bytes(
            (
                (v & 0x7F) | 0x80,
                (v >> 7 & 0x7F) | 0x80,
                (v >> 14 & 0x7F) | 0x80,
                (v >> 21 & 0x7F) | 0x80,
                (v >> 28 & 0x7F) | 0x80,
                v >> 35,
            )
        )
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result & _MASK, pos
        shift += 7


def _decode_raw(data: Any) -> PathwayContext | None:
    try:
        raw = bytes(data)
        if len(raw) < 10 or len(raw) > _MAX_ENCODED:
            return None
        (h,) = _U64.unpack_from(raw, 0)
        start, pos = _read_varint(raw, 8)
        edge, pos = _read_varint(raw, pos)
        if pos != len(raw) or h == 0:
            return None
        return PathwayContext(h, _unzigzag(start), _unzigzag(edge))
    except Exception:
        return None


def decode(data: Any) -> PathwayContext | None:
    """A context from raw wire bytes, or None (counted) if they are malformed. Never raises."""
    ctx = _decode_raw(data)
    if ctx is None:
        decode_errors.add()
    return ctx


def decode_b64(value: Any) -> PathwayContext | None:
    """A context from a ``dd-pathway-ctx-base64`` value (bytes or str), or None (counted)."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        decode_errors.add()
        return None
    return decode(raw)


def encode_str(ctx: PathwayContext) -> str:
    """The context as a base64 string, to carry over HTTP headers or any other transport."""
    return ctx.encode_b64().decode("ascii")


def decode_str(value: str | bytes) -> PathwayContext | None:
    """Inverse of :func:`encode_str`; None (counted) for anything malformed."""
    return decode_b64(value)


def from_headers(headers: Any) -> PathwayContext | None:
    """The pathway context in Kafka record headers (base64 key first, then the legacy raw key)."""
    if not headers:
        return None
    missing = object()
    b64: Any = missing
    legacy: Any = missing
    try:
        for item in headers:
            key = item[0]
            if key == HEADER:
                b64 = item[1]
            elif key == LEGACY_HEADER:
                legacy = item[1]
    except Exception:
        decode_errors.add()
        return None
    if b64 is not missing:
        return decode_b64(b64)
    if legacy is not missing:
        return _decode_raw(legacy) or decode_b64(legacy)
    return None
