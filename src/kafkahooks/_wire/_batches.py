"""Walk v2 record-batch headers in raw bytes: counts and sizes without decoding records.

A v2 RecordBatch starts with a fixed 61-byte header: baseOffset int64, batchLength int32 (bytes
after this field), partitionLeaderEpoch int32, magic int8, crc uint32, attributes int16 (codec in
the low three bits, bit 5 = control batch), lastOffsetDelta int32, baseTimestamp int64,
maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32, recordCount int32.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

from kafkahooks.hooks._types import Compression

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = 61
assert HEADER.size == HEADER_SIZE

_GZIP_ISIZE = struct.Struct("<I")
_CONTROL = 0x20

Decompress = Callable[[int, bytes], bytes]
"""A client's codec: (codec number, compressed records section) -> records section."""

_COMPRESSIONS = tuple(Compression(c) for c in range(5))


def uncompressed_size(codec: int, payload: bytes | memoryview, decompress: Decompress | None) -> int:
    """The size of a compressed records section once decompressed, or -1 if it cannot be known.

    gzip stores the size (mod 2**32) in its trailer, so it costs nothing; other codecs are
    decompressed with the client's own codec when one is given.
    """
    if codec == Compression.GZIP and len(payload) >= 18:
        return int(_GZIP_ISIZE.unpack_from(payload, len(payload) - 4)[0])
    if decompress is None:
        return -1
    try:
        return len(decompress(codec, bytes(payload)))
    except Exception:
        return -1


class BatchInfo(NamedTuple):
    """What :func:`walk` reports per data batch."""

    num_records: int
    uncompressed_bytes: int
    compressed_bytes: int
    compression: Compression
    base_offset: int
    last_offset: int
    first_timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...]


def walk(
    records: bytes | memoryview | None,
    decompress: Decompress | None = None,
    header_keys: frozenset[str] = frozenset(),
) -> Iterator[BatchInfo]:
    """Yield a :class:`BatchInfo` per v2 data batch in ``records``.

    Control batches (transaction markers), legacy (v0/v1) message sets and a partial batch at the
    end (a fetch cut by its byte limit) are skipped. With ``header_keys``, the first record's
    headers with those keys are decoded too. Never raises on malformed input: it stops.
    """
    if not records:
        return
    n = len(records)
    pos = 0
    while pos + HEADER_SIZE <= n:
        (base, batch_len, _, magic, _, attrs, last_delta, first_ts, _, _, _, _, count) = HEADER.unpack_from(
            records, pos
        )
        total = 12 + batch_len
        if batch_len < HEADER_SIZE - 12 or pos + total > n:
            return
        if magic == 2 and not attrs & _CONTROL:
            codec = attrs & 0x07
            compressed = total - HEADER_SIZE
            section = memoryview(records)[pos + HEADER_SIZE : pos + total]
            uncompressed = compressed if codec == 0 else uncompressed_size(codec, section, decompress)
            headers = first_record_headers(codec, section, header_keys, decompress) if header_keys else ()
            yield BatchInfo(
                count,
                uncompressed,
                compressed,
                _COMPRESSIONS[codec] if codec < 5 else Compression.NONE,
                base,
                base + last_delta,
                first_ts,
                headers,
            )
        pos += total


def _varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint at ``pos``: (value, next position). Raises IndexError/ValueError if malformed."""
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _first_record(codec: int, section: memoryview, decompress: Decompress | None) -> bytes | memoryview | None:
    if codec == 0:
        return section
    if codec == Compression.GZIP:
        # Inflate only as far as the first record: the rest of the batch is the client's business.
        inflater = zlib.decompressobj(47)
        out = inflater.decompress(section, 4096)
        length, start = _varint(out, 0)
        need = start + length
        while len(out) < need and inflater.unconsumed_tail:
            out += inflater.decompress(inflater.unconsumed_tail, need - len(out))
        return out
    return decompress(codec, bytes(section)) if decompress is not None else None


_patterns: dict[frozenset[str], tuple[tuple[str, bytes], ...]] = {}


def _key_patterns(keys: frozenset[str]) -> tuple[tuple[str, bytes], ...]:
    """Per wanted key, the bytes a header entry starts with: varint(zigzag(len)) + key."""
    found = _patterns.get(keys)
    if found is None:
        out = []
        for key in sorted(keys):
            raw = key.encode("utf-8")
            zz, prefix = len(raw) << 1, bytearray()
            while zz >= 0x80:
                prefix.append((zz & 0x7F) | 0x80)
                zz >>= 7
            prefix.append(zz)
            out.append((key, bytes(prefix) + raw))
        found = _patterns[keys] = tuple(out)
    return found


def first_record_headers(
    codec: int, section: memoryview, keys: frozenset[str], decompress: Decompress | None = None
) -> tuple[tuple[str, bytes], ...]:
    """The first record's headers whose key is in ``keys``; empty if none or if anything is malformed.

    Finds each wanted header entry by its exact bytes (length prefix and key) within the first
    record, searching from its headers' earliest possible start, at C speed; a value that does not
    parse is skipped.
    """
    try:
        buf = _first_record(codec, section, decompress)
        if buf is None:
            return ()
        length, pos = _varint(buf, 0)
        end = min(pos + length, len(buf))
        pos += 1  # attributes
        _, pos = _varint(buf, pos)  # timestamp delta
        _, pos = _varint(buf, pos)  # offset delta
        key_len, pos = _varint(buf, pos)
        pos += max(key_len, 0)
        value_len, pos = _varint(buf, pos)
        pos += max(value_len, 0)
        _, pos = _varint(buf, pos)  # header count
        raw = bytes(buf[pos:end])
        found: list[tuple[str, bytes]] = []
        for key, pattern in _key_patterns(keys):
            at = raw.find(pattern)
            if at < 0:
                continue
            vlen, vpos = _varint(raw, at + len(pattern))
            if 0 <= vlen and vpos + vlen <= len(raw):
                found.append((key, raw[vpos : vpos + vlen]))
        return tuple(found)
    except Exception:  # malformed in any way: no headers, never an error for the client
        return ()
