"""Walk v2 record-batch headers in raw bytes: counts and sizes without decoding records.

A v2 RecordBatch starts with a fixed 61-byte header: baseOffset int64, batchLength int32 (bytes
after this field), partitionLeaderEpoch int32, magic int8, crc uint32, attributes int16 (codec in
the low three bits, bit 5 = control batch), lastOffsetDelta int32, baseTimestamp int64,
maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32, recordCount int32.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from kafkahooks._selfstats import counter
from kafkahooks.hooks._records import BatchInfo, RawBatch
from kafkahooks.hooks._types import Compression

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = 61
assert HEADER.size == HEADER_SIZE

_GZIP_ISIZE = struct.Struct("<I")
_CONTROL = 0x20

Decompress = Callable[[int, bytes], bytes]
"""A client's codec: (codec number, compressed records section) -> records section."""
FirstHeaders = Callable[[memoryview], Any]
"""A client's own (compiled) reader: an uncompressed v2 batch -> its first record's headers as
``[(key, value), ...]`` (or None). Faster than :func:`_first_headers` where the client has one."""

_COMPRESSIONS = tuple(Compression(c) for c in range(5))
_flat = chain.from_iterable
"""Header pairs laid flat: ``key, value, key, value, ...``."""
_new_info = tuple.__new__
"""Builds a :class:`BatchInfo` from all its fields without the named tuple's generated Python
``__new__`` (a call per batch saved on the I/O path)."""


def uncompressed_size(codec: int, payload: bytes | memoryview, decompress: Decompress | None) -> int:
    """The size of a compressed records section once decompressed, or -1 if it cannot be known.

    gzip stores the size (mod 2**32) in its trailer, so it costs nothing; other codecs are
    decompressed with the client's own codec when one is given.
    """
    if codec == Compression.GZIP:
        return declared_size(codec, payload, 0, len(payload))
    if decompress is None:
        return -1
    try:
        return len(decompress(codec, bytes(payload)))
    except Exception:
        return -1


MAX_DEFERRED = 2048
"""A first record this long or shorter is copied for the export worker to read; a longer one is
read on the spot (copying it would cost more than reading it)."""


def walk(
    records: bytes | memoryview | None,
    decompress: Decompress | None = None,
    header_keys: frozenset[str] = frozenset(),
    first_headers: FirstHeaders | None = None,
    defer: bool = False,
) -> list[RawBatch]:
    """A :data:`~kafkahooks.hooks._records.RawBatch` per v2 data batch in ``records``, in order (a
    plain tuple: see there why; :func:`~kafkahooks.hooks._records.batch_info` for a
    :class:`BatchInfo`).

    Control batches (transaction markers), legacy (v0/v1) message sets and a partial batch at the
    end (a fetch cut by its byte limit) are skipped. With ``header_keys``, the first record's
    headers with those keys are read too (with the client's own reader ``first_headers`` for
    uncompressed batches, when it has one); with ``defer``, an uncompressed first record of at most
    :data:`MAX_DEFERRED` bytes is copied into ``first_record`` instead, for :func:`read_headers`
    later. Never raises on malformed input: it stops.
    """
    out: list[RawBatch] = []
    if not records:
        return out
    n = len(records)
    pos = 0
    view: memoryview | None = None
    while pos + HEADER_SIZE <= n:
        (base, batch_len, _, magic, _, attrs, last_delta, first_ts, _, _, _, _, count) = HEADER.unpack_from(
            records, pos
        )
        total = 12 + batch_len
        if batch_len < HEADER_SIZE - 12 or pos + total > n:
            break
        if magic == 2 and not attrs & _CONTROL:
            codec = attrs & 0x07
            compressed = total - HEADER_SIZE
            first = None
            headers: Iterable[tuple[str, bytes]]  # the wanted header pairs
            if codec == 0:
                uncompressed = compressed
                if defer and header_keys:
                    first = _copy_first(records, pos + HEADER_SIZE, pos + total)
                if not header_keys or first is not None:
                    headers = ()
                elif first_headers is not None:
                    if view is None:
                        view = memoryview(records)
                    headers = _pick(first_headers, view[pos : pos + total], header_keys)
                else:
                    headers = _first_headers(records, pos + HEADER_SIZE, pos + total, header_keys)
            else:
                if view is None:
                    view = memoryview(records)
                section = view[pos + HEADER_SIZE : pos + total]
                if header_keys and codec != Compression.GZIP and decompress is not None:
                    # Both the size and the first record need the whole section: decompress it once.
                    uncompressed, headers = _decompressed(codec, section, header_keys, decompress)
                else:
                    uncompressed = uncompressed_size(codec, section, decompress)
                    headers = first_record_headers(codec, section, header_keys, decompress) if header_keys else ()
            if codec > 4:  # not a codec Kafka knows
                codec = 0
            # The header pairs laid flat after the fixed fields, as a RawBatch holds them.
            out.append(
                (count, uncompressed, compressed, codec, base, base + last_delta, first_ts, first, *_flat(headers))
            )
        pos += total
    return out


def _decompressed(
    codec: int, section: memoryview, keys: frozenset[str], decompress: Decompress
) -> tuple[int, tuple[tuple[str, bytes], ...]]:
    """The uncompressed size and the wanted first-record headers of a section whose codec keeps no
    size (snappy, lz4, zstd), from one decompression; (-1, ()) if it fails."""
    try:
        whole = decompress(codec, bytes(section))
    except Exception:
        return -1, ()
    return len(whole), _first_headers(whole, 0, len(whole), keys)


def produced(records: bytes | memoryview, header_keys: frozenset[str], defer: bool) -> BatchInfo | None:
    """What :func:`walk` reports for the common Produce payload, in one step: ``records`` is
    exactly one v2 data batch, and either uncompressed, with no header wanted or its first record
    copied for later (``defer``), or compressed, with no header wanted and its uncompressed size
    declared by its codec's own framing (:func:`declared_size`: no decompression on the client's
    thread). None for anything else: then walk it."""
    n = len(records)
    if n < HEADER_SIZE:
        return None
    (base, batch_len, _, magic, _, attrs, last_delta, first_ts, _, _, _, _, count) = HEADER.unpack_from(records, 0)
    if batch_len + 12 != n or magic != 2 or attrs & _CONTROL:
        return None
    codec = attrs & 0x07
    if codec:
        # With headers wanted, the first record is inside the compressed section: walk it.
        size = -1 if header_keys or codec >= 5 else declared_size(codec, records, HEADER_SIZE, n)
        if size < 0:
            return None
        compressed = n - HEADER_SIZE
        return _new_info(
            BatchInfo, (count, size, compressed, _COMPRESSIONS[codec], base, base + last_delta, first_ts, (), None)
        )
    first = None
    if header_keys:
        first = _copy_first(records, HEADER_SIZE, n) if defer else None
        if first is None:
            return None
    size = n - HEADER_SIZE
    return _new_info(BatchInfo, (count, size, size, Compression.NONE, base, base + last_delta, first_ts, (), first))


_ZSTD_MAGIC = 0xFD2FB528
_LZ4_MAGIC = 0x184D2204
_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = 16
_U32_LE = struct.Struct("<I")
_U64_LE = struct.Struct("<Q")
_U32_BE = struct.Struct(">I")


def declared_size(codec: int, buf: Any, start: int, end: int) -> int:
    """The size that the compressed records section ``buf[start:end]`` declares it has once
    decompressed, read from its codec's framing without decompressing it: gzip's trailer, a zstd
    frame's content size, an lz4 frame's content size, snappy's length per block. -1 when the
    framing keeps none (aiokafka's lz4 frames, a streamed zstd frame) or is not exactly one
    well-formed frame spanning the section; never raises.

    For a producer's own batches only, which its client has just compressed: a batch fetched from
    a broker may come from anyone, and claim any size, so :func:`walk` decompresses those (all but
    gzip's, whose trailer it has always read: :func:`uncompressed_size`).
    """
    try:
        if codec == 1:  # gzip
            return int(_GZIP_ISIZE.unpack_from(buf, end - 4)[0]) if end - start >= 18 else -1
        if codec == 4:  # zstd
            return _zstd_size(buf, start, end)
        if codec == 3:  # lz4
            return _lz4_size(buf, start, end)
        if codec == 2:  # snappy
            return _snappy_size(buf, start, end)
    except (IndexError, struct.error):
        pass
    return -1


def _zstd_size(buf: Any, pos: int, end: int) -> int:
    """A zstd frame's Frame_Content_Size (RFC 8878, 3.1.1), if it has one and its blocks end the
    section."""
    # The descriptor's reserved bit (0x08) must be clear.
    if end - pos < 6 or _U32_LE.unpack_from(buf, pos)[0] != _ZSTD_MAGIC or buf[pos + 4] & 0x08:
        return -1
    descriptor = buf[pos + 4]
    single_segment = descriptor & 0x20
    width = (1 if single_segment else 0, 2, 4, 8)[descriptor >> 6]  # 0: no content size written
    pos += 5 + (0 if single_segment else 1) + (0, 1, 2, 4)[descriptor & 0x03]
    if width == 0 or pos + width > end:
        return -1
    size = int.from_bytes(buf[pos : pos + width], "little") + (256 if width == 2 else 0)
    pos += width
    while pos + 3 <= end:  # Block_Header: last block (bit 0), type (bits 1-2), size (bits 3-23)
        header = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        kind = (header >> 1) & 0x03
        if kind == 3:  # reserved
            break
        pos += 3 + (1 if kind == 1 else header >> 3)  # an RLE block holds one byte
        if header & 0x01:
            if descriptor & 0x04:  # Content_Checksum
                pos += 4
            return size if pos == end else -1
    return -1


def _lz4_size(buf: Any, pos: int, end: int) -> int:
    """An lz4 frame's content size (the LZ4 frame format, 1.6), if its descriptor has one and its
    blocks end the section."""
    if end - pos < 15 or _U32_LE.unpack_from(buf, pos)[0] != _LZ4_MAGIC:
        return -1
    flags = buf[pos + 4]
    if flags >> 6 != 1 or not flags & 0x08:  # version 01; the content size flag
        return -1
    size = int(_U64_LE.unpack_from(buf, pos + 6)[0])
    pos += 14 + (4 if flags & 0x01 else 0) + 1  # magic, FLG, BD, content size, dictionary id, HC
    block_checksum = 4 if flags & 0x10 else 0
    while True:
        if pos + 4 > end:
            return -1
        block = _U32_LE.unpack_from(buf, pos)[0]
        pos += 4
        if block == 0:  # EndMark
            break
        pos += (block & 0x7FFFFFFF) + block_checksum
    if flags & 0x04:  # content checksum
        pos += 4
    return size if pos == end else -1


def _snappy_size(buf: Any, pos: int, end: int) -> int:
    """Snappy's uncompressed length: in Kafka's xerial framing (a 16-byte header, then blocks of a
    big-endian length and a raw snappy block) the sum of each block's own preamble; in raw
    snappy, the stream's preamble."""
    if bytes(buf[pos : pos + 8]) != _XERIAL_MAGIC:
        return _uvarint32(buf, pos, end)
    pos += _XERIAL_HEADER
    if pos >= end:
        return -1
    total = 0
    while pos < end:
        if pos + 4 > end:
            return -1
        length = _U32_BE.unpack_from(buf, pos)[0]
        pos += 4
        if length == 0 or pos + length > end:
            return -1
        block = _uvarint32(buf, pos, pos + length)
        if block < 0:
            return -1
        total += block
        pos += length
    return total


def _uvarint32(buf: Any, pos: int, end: int) -> int:
    """Snappy's preamble: an unsigned little-endian base-128 varint of at most five bytes
    (a 32-bit length); -1 if malformed."""
    result = shift = 0
    while pos < end and shift < 35:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result if result < 1 << 32 else -1
        shift += 7
    return -1


def _copy_first(records: Any, start: int, end: int) -> bytes | None:
    """The record at ``records[start:]`` as bytes, if it is short and whole; else None."""
    try:
        b = records[start]
        if b < 0x80:
            length, body = (b >> 1) ^ -(b & 1), start + 1
        elif records[start + 1] < 0x80:  # a record of 64 to 8191 bytes: two bytes, read inline
            v = (b & 0x7F) | (records[start + 1] << 7)
            length, body = (v >> 1) ^ -(v & 1), start + 2
        else:
            length, body = _varint(records, start)
        stop = body + length
        if length <= 0 or stop > end or stop - start > MAX_DEFERRED:
            return None
        return bytes(records[start:stop])
    except Exception:
        return None


def read_headers(record: bytes, keys: frozenset[str]) -> tuple[tuple[str, bytes], ...]:
    """The headers of a copied first record (``BatchInfo.first_record``) whose key is in ``keys``."""
    return _first_headers(record, 0, len(record), keys)


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
        # First its length (a varint of at most 5 bytes), then exactly the rest of it: inflating a
        # fixed 4 KiB took 10 µs where a first record of 200 bytes takes 3.5.
        inflater = zlib.decompressobj(47)
        out = inflater.decompress(section, 5)
        length, start = _varint(out, 0)
        need = start + length
        while len(out) < need and inflater.unconsumed_tail:
            out += inflater.decompress(inflater.unconsumed_tail, need - len(out))
        return out
    return decompress(codec, bytes(section)) if decompress is not None else None


MAX_HEADERS_SCANNED = 256
"""Headers of a first record looked at for propagation keys; a key placed after them is not found."""

MAX_HEADER_VALUE = 8192
"""The longest wanted header value read (the W3C baggage limit; traceparent, tracestate and the
pathway are far shorter). A longer one is never copied: its key counts as absent, the first of
that key still wins (a later one is not taken instead), and ``header_values_too_long`` counts it."""

_too_long = counter("header_values_too_long", "Wanted header values over MAX_HEADER_VALUE, left unread")

_encoded_keys: dict[frozenset[str], tuple[dict[bytes, str], frozenset[int]]] = {}


def _wanted(keys: frozenset[str]) -> tuple[dict[bytes, str], frozenset[int]]:
    """The wanted keys as bytes, and their lengths (most keys are skipped on length alone)."""
    found = _encoded_keys.get(keys)
    if found is None:
        encoded = {key.encode("utf-8"): key for key in keys}
        found = _encoded_keys[keys] = (encoded, frozenset(len(k) for k in encoded))
    return found


def first_record_headers(
    codec: int, section: memoryview, keys: frozenset[str], decompress: Decompress | None = None
) -> tuple[tuple[str, bytes], ...]:
    """The first record's headers whose key is exactly one of ``keys``, from a batch's records
    section in codec ``codec``; empty if none or if anything is malformed."""
    try:
        buf = _first_record(codec, section, decompress)
    except Exception:
        return ()
    return () if buf is None else _first_headers(buf, 0, len(buf), keys)


def _pick(read: FirstHeaders, batch: memoryview, keys: frozenset[str]) -> Iterable[tuple[str, bytes]]:
    """The wanted headers out of what a client's reader decoded: exact keys, first of each wins.

    Runs once per fetched batch on the consumer's thread: a dict keeps the first value of each
    key (and its order), which costs half of what a list searched per header did."""
    try:
        headers = read(batch)
        if not headers:
            return ()
        if len(headers) > MAX_HEADERS_SCANNED:
            headers = headers[:MAX_HEADERS_SCANNED]
        found: dict[str, bytes] = {}
        refused = 0
        for key, value in headers:
            if key in keys and value is not None and key not in found:
                if len(value) > MAX_HEADER_VALUE:  # the reader decoded it; kafkahooks keeps no copy
                    found[key] = _REFUSED
                    refused += 1
                else:
                    found[key] = value if type(value) is bytes else bytes(value)
        return _kept(found.items(), refused) if refused else found.items()
    except Exception:  # malformed in any way: no headers, never an error for the client
        return ()


_REFUSED = b"\x00refused"
"""Stands for a wanted value over :data:`MAX_HEADER_VALUE` while a record's headers are read (so
its key is taken), never returned."""


def _kept(found: Iterable[tuple[str, bytes]], refused: int) -> tuple[tuple[str, bytes], ...]:
    """``found`` without its ``refused`` values, which are counted (rare: off the common path)."""
    _too_long.add(refused)
    return tuple(pair for pair in found if pair[1] is not _REFUSED)


def _first_headers(buf: Any, start: int, end: int, keys: frozenset[str]) -> tuple[tuple[str, bytes], ...]:
    """The headers of the record at ``buf[start:]`` (no further than ``end``) whose key is exactly
    one of ``keys``: walked one by one (a key is a key, never bytes inside another header's
    value); the first of each key wins; at most :data:`MAX_HEADERS_SCANNED` are looked at.

    Varints of one and two bytes (lengths up to 8191) are read inline, longer ones by
    :func:`_varint`: this runs once per produced batch on the export worker and once per fetched
    batch without a client reader, and a call per varint was a third of its time.
    """
    try:
        b = buf[start]
        if b < 0x80:
            length, pos = (b >> 1) ^ -(b & 1), start + 1
        elif buf[start + 1] < 0x80:
            v = (b & 0x7F) | (buf[start + 1] << 7)
            length, pos = (v >> 1) ^ -(v & 1), start + 2
        else:
            length, pos = _varint(buf, start)
        end = min(end, pos + length)
        pos += 1  # attributes
        while buf[pos] & 0x80:  # timestamp delta
            pos += 1
        pos += 1
        while buf[pos] & 0x80:  # offset delta
            pos += 1
        pos += 1
        for _ in (0, 1):  # the key, then the value: skipped
            b = buf[pos]
            if b < 0x80:
                skip, pos = (b >> 1) ^ -(b & 1), pos + 1
            elif buf[pos + 1] < 0x80:
                v = (b & 0x7F) | (buf[pos + 1] << 7)
                skip, pos = (v >> 1) ^ -(v & 1), pos + 2
            else:
                skip, pos = _varint(buf, pos)
            if skip > 0:
                pos += skip
        b = buf[pos]
        if b < 0x80:
            count, pos = (b >> 1) ^ -(b & 1), pos + 1
        else:
            count, pos = _varint(buf, pos)
        if count <= 0:
            return ()
        wanted, lengths = _wanted(keys)
        found: list[tuple[str, bytes]] = []
        taken: list[str] = []
        refused = 0
        for _ in range(count if count < MAX_HEADERS_SCANNED else MAX_HEADERS_SCANNED):
            b = buf[pos]
            if b < 0x80:
                key_len, pos = (b >> 1) ^ -(b & 1), pos + 1
            else:
                key_len, pos = _varint(buf, pos)
            if key_len < 0 or pos + key_len > end:
                break
            name = wanted.get(bytes(buf[pos : pos + key_len])) if key_len in lengths else None
            pos += key_len
            b = buf[pos]
            if b < 0x80:
                value_len, pos = (b >> 1) ^ -(b & 1), pos + 1
            elif buf[pos + 1] < 0x80:
                v = (b & 0x7F) | (buf[pos + 1] << 7)
                value_len, pos = (v >> 1) ^ -(v & 1), pos + 2
            else:
                value_len, pos = _varint(buf, pos)
            if value_len > 0:
                if pos + value_len > end:
                    break
                if name is not None and name not in taken:
                    taken.append(name)
                    if value_len > MAX_HEADER_VALUE:
                        found.append((name, _REFUSED))
                        refused += 1
                    else:
                        found.append((name, bytes(buf[pos : pos + value_len])))
                pos += value_len
        return _kept(found, refused) if refused else tuple(found)
    except Exception:  # malformed in any way: no headers, never an error for the client
        return ()
