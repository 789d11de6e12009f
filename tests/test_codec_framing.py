"""A producer's compressed batches: their uncompressed size read from the codec's own framing
(``_batches.declared_size``), checked against the real codecs both clients compress with, and
never a decompression on the client's thread when the framing has it."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

import pytest
from aiokafka import codec as aiokafka_codec
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka import codec as kafka_codec

from kafkahooks._wire import _batches
from kafkahooks._wire._shared import decompressor
from kafkahooks.hooks import Compression
from kafkahooks.hooks._records import batch_info
from tests._benchmarks import load

GZIP, SNAPPY, LZ4, ZSTD = 1, 2, 3, 4
ENCODERS: dict[str, dict[int, Callable[[bytes], bytes]]] = {
    "aiokafka": {
        GZIP: aiokafka_codec.gzip_encode,
        SNAPPY: aiokafka_codec.snappy_encode,
        LZ4: aiokafka_codec.lz4_encode,
        ZSTD: aiokafka_codec.zstd_encode,
    },
    "kafka-python": {
        GZIP: kafka_codec.gzip_encode,
        SNAPPY: kafka_codec.snappy_encode,
        LZ4: kafka_codec.lz4_encode,
        ZSTD: kafka_codec.zstd_encode,
    },
}
NO_CONTENT_SIZE = {("aiokafka", LZ4)}
"""aiokafka's lz4 frames (cramjam's compressor) do not write the content size."""

# Around every width a zstd frame's content size takes (1 byte below 256, 2 bytes to 65 791, then
# 4), xerial snappy's 32 KiB blocks and lz4's 64 KiB blocks.
SIZES = [1, 255, 256, 257, 16_300, 32_768, 32_769, 65_791, 65_792, 70_000, 200_000]


def payload(size: int) -> bytes:
    """Half random, half repeated: compressible, as records are, yet not to nothing."""
    half = os.urandom(size // 4).hex().encode()
    return (half + b"x" * size)[:size]


@pytest.mark.parametrize("client", sorted(ENCODERS))
@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
@pytest.mark.parametrize("size", SIZES)
def test_the_framing_declares_the_true_size(client: str, codec: int, size: int) -> None:
    """Each client's own codec: the size read from the framing is the payload's, or -1 where that
    codec's framing keeps none; read at any offset of a larger buffer, of any buffer type."""
    data = payload(size)
    compressed = ENCODERS[client][codec](data)
    expected = -1 if (client, codec) in NO_CONTENT_SIZE else size
    assert expected == _batches.declared_size(codec, compressed, 0, len(compressed))
    padded = b"\x00" * 61 + compressed
    for buf in (padded, bytearray(padded), memoryview(padded)):
        assert expected == _batches.declared_size(codec, buf, 61, len(padded))


def test_zstd_without_a_content_size_or_not_one_frame_is_unknown() -> None:
    """A zstd frame streamed without its content size, two frames, a cut frame, bytes after the
    frame: -1 (then the batch is measured by decompressing it)."""
    import zstandard

    data = payload(20_000)
    one = zstandard.ZstdCompressor().compress(data)
    assert 20_000 == _batches.declared_size(ZSTD, one, 0, len(one))
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    checksummed = zstandard.ZstdCompressor(write_checksum=True).compress(data)
    assert 20_000 == _batches.declared_size(ZSTD, checksummed, 0, len(checksummed))
    for bad in (streamed, one + one, one[:-1], one + b"\x00", checksummed[:-4], b"\x00" + one[1:]):
        assert -1 == _batches.declared_size(ZSTD, bad, 0, len(bad))


def test_lz4_and_snappy_that_do_not_span_the_section_are_unknown() -> None:
    """An lz4 frame cut short or followed by more bytes, a snappy stream with a cut block: -1."""
    import lz4.frame

    data = payload(100_000)
    frame = lz4.frame.compress(data, store_size=True)
    assert 100_000 == _batches.declared_size(LZ4, frame, 0, len(frame))
    unsized = lz4.frame.compress(data, store_size=False)
    snappy = kafka_codec.snappy_encode(data)
    assert 100_000 == _batches.declared_size(SNAPPY, snappy, 0, len(snappy))
    for codec, bad in ((LZ4, unsized), (LZ4, frame[:-1]), (LZ4, frame + frame), (SNAPPY, snappy[:-1])):
        assert -1 == _batches.declared_size(codec, bad, 0, len(bad))


def test_raw_snappy_declares_its_preamble() -> None:
    """Snappy without the xerial framing: the stream's own length preamble."""
    import cramjam

    raw = bytes(cramjam.snappy.compress_raw(payload(40_000)))
    assert 40_000 == _batches.declared_size(SNAPPY, raw, 0, len(raw))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([GZIP, SNAPPY, LZ4, ZSTD]), st.binary(max_size=200), st.booleans())
def test_garbage_never_raises(codec: int, data: bytes, with_magic: bool) -> None:
    """Arbitrary bytes, with or without the codec's magic in front: a size or -1, never an error."""
    magic = {
        GZIP: b"\x1f\x8b",
        SNAPPY: b"\x82SNAPPY\x00" + bytes(8),
        LZ4: struct.pack("<I", 0x184D2204),
        ZSTD: struct.pack("<I", 0xFD2FB528),
    }[codec]
    buf = magic + data if with_magic else data
    assert _batches.declared_size(codec, buf, 0, len(buf)) >= -1


@pytest.mark.parametrize("client", sorted(ENCODERS))
@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4, ZSTD])
@pytest.mark.parametrize(("count", "value_size"), [(148, 100), (2_000, 100), (30, 5_000)])
def test_a_produced_batch_reads_as_the_walk_that_decompresses_it(
    client: str, codec: int, count: int, value_size: int
) -> None:
    """The Produce path's one step reports what the walk reports by decompressing the batch (the
    truth), without calling the decompressor; where the framing has no size, it leaves the batch
    to the walk; with headers wanted too (they are inside the compressed records), likewise."""
    data = load("codecs").batch(client, codec, count, value_size)  # each client's own builder and codec
    assert Compression(codec) == batch_info(_batches.walk(data)[0]).compression
    truth = [batch_info(b) for b in _batches.walk(data, decompressor(aiokafka_codec))]
    assert 1 == len(truth)
    assert truth[0].uncompressed_bytes == _batches.uncompressed_size(
        codec, memoryview(data)[61:], decompressor(aiokafka_codec)
    )
    info = _batches.produced(data, frozenset(), False)
    if (client, codec) in NO_CONTENT_SIZE:
        assert info is None
    else:
        assert truth[0] == info
    assert _batches.produced(data, frozenset({"h"}), True) is None
