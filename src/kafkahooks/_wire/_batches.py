"""Walk v2 record-batch headers in raw bytes: counts and sizes without decoding records.

A v2 RecordBatch starts with a fixed 61-byte header: baseOffset int64, batchLength int32 (bytes
after this field), partitionLeaderEpoch int32, magic int8, crc uint32, attributes int16 (codec in
the low three bits, bit 5 = control batch), lastOffsetDelta int32, baseTimestamp int64,
maxTimestamp int64, producerId int64, producerEpoch int16, baseSequence int32, recordCount int32.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

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


def walk(
    records: bytes | memoryview | None, decompress: Decompress | None = None
) -> Iterator[tuple[int, int, int, Compression]]:
    """Yield ``(num_records, uncompressed_bytes, compressed_bytes, compression)`` per v2 data batch.

    Control batches (transaction markers), legacy (v0/v1) message sets and a partial batch at the
    end (a fetch cut by its byte limit) are skipped. Never raises on malformed input: it stops.
    """
    if not records:
        return
    n = len(records)
    pos = 0
    while pos + HEADER_SIZE <= n:
        (_, batch_len, _, magic, _, attrs, _, _, _, _, _, _, count) = HEADER.unpack_from(records, pos)
        total = 12 + batch_len
        if batch_len < HEADER_SIZE - 12 or pos + total > n:
            return
        if magic == 2 and not attrs & _CONTROL:
            codec = attrs & 0x07
            compressed = total - HEADER_SIZE
            if codec == 0:
                uncompressed = compressed
            else:
                view = memoryview(records)[pos + HEADER_SIZE : pos + total]
                uncompressed = uncompressed_size(codec, view, decompress)
            yield count, uncompressed, compressed, _COMPRESSIONS[codec] if codec < 5 else Compression.NONE
        pos += total
