"""Walking v2 record-batch headers in raw bytes, checked against batches the clients build."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatchBuilder

from kafkahooks._wire import _batches
from kafkahooks._wire import aiokafka as _aiokafka
from kafkahooks.hooks import BatchInfo, Compression
from kafkahooks.hooks._records import batch_info

READERS = [None, _aiokafka.first_headers]
"""kafkahooks' own first-record reader, and aiokafka's compiled one where it exists."""


def walk(*args: Any, **kwargs: Any) -> list[BatchInfo]:
    """:func:`_batches.walk`, each batch as the :class:`BatchInfo` plugins outside kafkahooks get."""
    return [batch_info(b) for b in _batches.walk(*args, **kwargs)]


def build(count: int, codec: int = 0, value: bytes = b"v" * 100) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)
    for i in range(count):
        builder.append(i, 1_700_000_000_000 + i, None, value, [("h", b"x")])
    return bytes(builder.build())


def records_section_size(count: int) -> int:
    return len(build(count)) - _batches.HEADER_SIZE


def test_uncompressed_batch_counts_and_sizes() -> None:
    """An uncompressed batch reports its record count and equal sizes."""
    ((count, uncompressed, compressed, codec, *_),) = list(walk(build(7)))
    assert (7, records_section_size(7), records_section_size(7), Compression.NONE) == (
        count,
        uncompressed,
        compressed,
        codec,
    )


def test_gzip_batch_reports_true_uncompressed_size() -> None:
    """A gzip batch's uncompressed size equals the same records uncompressed (from the gzip trailer)."""
    data = build(50, codec=1)
    ((count, uncompressed, compressed, codec, *_),) = list(walk(data))
    assert (50, records_section_size(50), len(data) - 61, Compression.GZIP) == (count, uncompressed, compressed, codec)
    assert compressed < uncompressed


def test_several_batches_in_one_buffer() -> None:
    """Concatenated batches are reported one by one, in order."""
    data = build(3) + build(5, codec=1) + build(2)
    assert [3, 5, 2] == [c for c, *_ in walk(data)]


def test_truncated_trailing_batch_is_skipped() -> None:
    """A fetch cut by its byte limit ends in a partial batch, which is not reported."""
    data = build(3) + build(4)[:-10]
    assert [3] == [c for c, *_ in walk(data)]


def test_control_batches_are_skipped() -> None:
    """Transaction markers (attribute bit 5) are not data batches."""
    data = bytearray(build(1))
    attrs = struct.unpack_from(">h", data, 21)[0]
    struct.pack_into(">h", data, 21, attrs | 0x20)
    assert [] == list(walk(bytes(data)))


def test_other_codecs_use_the_given_decompressor() -> None:
    """Codecs without a size trailer are measured with the client's decompressor, -1 without one."""
    data = bytearray(build(2))
    struct.pack_into(">h", data, 21, 4)  # claim zstd
    calls: list[int] = []

    def decompress(codec: int, payload: bytes) -> bytes:
        calls.append(codec)
        return b"x" * 1234

    assert [(2, 1234)] == [(c, u) for c, u, *_ in walk(bytes(data), decompress)]
    assert [4] == calls
    # Wanted headers too: the same one decompression gives the size and the first record.
    walk(bytes(data), decompress, header_keys=frozenset({"h"}))
    assert [4, 4] == calls
    assert [(2, -1)] == [(c, u) for c, u, *_ in walk(bytes(data))]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("codec", [0, 1])
def test_first_record_headers_are_found(codec: int, reader: _batches.FirstHeaders | None) -> None:
    """The wanted headers of each batch's first record are decoded, compressed or not; others skipped."""
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_000, b"key", b"v" * 5000, [("traceparent", b"tp-1"), ("other", b"x")])
    builder.append(1, 1_700_000_000_001, None, b"v", [("traceparent", b"tp-2")])
    data = bytes(builder.build())
    (info,) = walk(data, header_keys=frozenset({"traceparent", "missing"}), first_headers=reader)
    assert (("traceparent", b"tp-1"),) == info.headers
    assert (2, 0, 1, 1_700_000_000_000) == (
        info.num_records,
        info.base_offset,
        info.last_offset,
        info.first_timestamp_ms,
    )


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises(data: bytes) -> None:
    """Arbitrary bytes never raise and never report a negative count of bytes read."""
    for reader in READERS:
        for info in walk(data + build(1), header_keys=frozenset({"h"}), first_headers=reader):
            assert info.compressed_bytes >= 0


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("codec", [0, 1])
def test_a_key_inside_another_headers_value_is_not_a_header(codec: int, reader: _batches.FirstHeaders | None) -> None:
    """A traceparent entry forged inside another header's value (or the record value) is never
    taken for the batch's own: keys are matched exactly, header by header."""
    forged = b"\x16traceparent\x0aFORGED"  # what a real traceparent entry looks like on the wire
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_000, forged, forged, [("x-carrier", forged), ("Traceparent", b"case")])
    data = bytes(builder.build())
    (info,) = walk(data, header_keys=frozenset({"traceparent"}), first_headers=reader)
    assert () == info.headers
    builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_000, None, b"v", [("x-carrier", forged), ("traceparent", b"real")])
    (info,) = walk(bytes(builder.build()), header_keys=frozenset({"traceparent"}), first_headers=reader)
    assert (("traceparent", b"real"),) == info.headers


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=3000), st.binary(max_size=40))
def test_a_deferred_first_record_reads_as_one_read_on_the_spot(value_size: int, header: bytes) -> None:
    """The producer side copies a short first record for the export worker (one, two or more
    bytes of length prefix); reading its headers later finds what reading on the spot finds."""
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 20)
    builder.append(0, 1_700_000_000_000, None, b"v" * value_size, [("traceparent", header), ("x", b"y")])
    builder.append(1, 1_700_000_000_001, None, b"v", [])
    data = bytes(builder.build())
    keys = frozenset({"traceparent"})
    (now,) = walk(data, header_keys=keys)
    (later,) = walk(data, header_keys=keys, defer=True)
    if later.first_record is None:  # longer than MAX_DEFERRED: read on the spot instead
        assert value_size > _batches.MAX_DEFERRED - 60
        assert now.headers == later.headers
    else:
        assert () == later.headers
        assert now.headers == _batches.read_headers(later.first_record, keys)
        assert ((("traceparent", header),) if header else ()) == now.headers  # an empty value is no context


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=300), st.booleans())
def test_the_produce_fast_path_reports_what_the_walk_reports(count: int, value_size: int, wanted: bool) -> None:
    """One batch (what a producer sends per partition) gets the same report from the one-step
    reader as from the walk: uncompressed, or compressed with no header wanted (gzip here; every
    codec in test_codec_framing.py); anything else is left to the walk."""
    keys = frozenset({"h"}) if wanted else frozenset()
    data = build(count, value=b"v" * value_size)
    assert walk(data, header_keys=keys, defer=True) == [_batches.produced(data, keys, True)]
    assert walk(data) == [_batches.produced(data, frozenset(), False)]
    gzipped = build(count, codec=1, value=b"v" * value_size)
    assert walk(gzipped) == [_batches.produced(gzipped, frozenset(), False)]
    if wanted and walk(gzipped)[0].compression is Compression.GZIP:  # (too small: sent as is)
        assert None is _batches.produced(gzipped, keys, True)  # headers inside the compressed section
    assert None is _batches.produced(data + build(1), keys, True)  # two batches
    assert None is _batches.produced(data[:-1], keys, True)  # cut short
    control = bytearray(data)
    struct.pack_into(">h", control, 21, struct.unpack_from(">h", control, 21)[0] | 0x20)
    assert None is _batches.produced(bytes(control), keys, True)
    if wanted:
        assert None is _batches.produced(data, keys, False)  # headers to read on the spot: the walk's job


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("codec", [0, 1, 4])
def test_a_value_over_the_limit_is_refused_and_counted(codec: int, reader: _batches.FirstHeaders | None) -> None:
    """A wanted value longer than MAX_HEADER_VALUE is not read (its key counts as absent, a later
    header of the same key is not taken instead) and is counted; one at the limit is read."""
    from kafkahooks._selfstats import snapshot

    limit = _batches.MAX_HEADER_VALUE
    builder = DefaultRecordBatchBuilder(2, codec % 4, False, -1, -1, -1, 1 << 22)
    builder.append(
        0,
        1_700_000_000_000,
        None,
        b"v",
        [("traceparent", b"x" * (limit + 1)), ("traceparent", b"spoofed"), ("tracestate", b"y" * limit)],
    )
    data = bytearray(builder.build())
    if codec == 4:  # zstd, claimed over uncompressed records: read through the given decompressor
        struct.pack_into(">h", data, 21, 4)
    before = snapshot().get("header_values_too_long", 0)
    (info,) = walk(
        bytes(data),
        decompress=lambda _, payload: payload,
        header_keys=frozenset({"traceparent", "tracestate"}),
        first_headers=reader,
    )
    assert (("tracestate", b"y" * limit),) == info.headers
    assert 1 == snapshot()["header_values_too_long"] - before


def _expected(headers: list[tuple[str, bytes | None]], keys: frozenset[str]) -> tuple[tuple[str, bytes], ...]:
    """What a first-record reader must report, from the headers themselves: exact keys, the first
    non-empty value of each wanted key wins, a value over the limit takes its key and is left out."""
    found: list[tuple[str, bytes]] = []
    taken: set[str] = set()
    for key, value in headers[: _batches.MAX_HEADERS_SCANNED]:
        if key in keys and value and key not in taken:
            taken.add(key)
            if len(value) <= _batches.MAX_HEADER_VALUE:
                found.append((key, value))
    return tuple(found)


_LENGTHS = st.sampled_from([0, 1, 63, 64, 65, 100, 8191, 8192, 8193, 9000])
"""Sizes around the varint widths (one byte to 63, two to 8191, three beyond) and the value limit."""


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.none(), _LENGTHS.map(lambda n: b"k" * n)),
    _LENGTHS,
    st.lists(
        st.tuples(
            st.sampled_from(["traceparent", "tracestate", "Traceparent", "x", "traceparen", "dd-pathway-ctx-base64"]),
            st.one_of(st.none(), _LENGTHS.map(lambda n: b"v" * n)),
        ),
        max_size=6,
    ),
)
def test_the_python_reader_finds_exactly_the_wanted_headers(
    key: bytes | None, value_size: int, headers: list[tuple[str, bytes | None]]
) -> None:
    """kafkahooks' own first-record reader (inline varints of one and two bytes, longer ones by
    call) reports what the headers say, read on the spot or from the copy the producer side
    defers to the export worker, whatever the widths of the record's length, key, value and
    header varints."""
    keys = frozenset({"traceparent", "tracestate", "dd-pathway-ctx-base64"})
    builder = DefaultRecordBatchBuilder(2, 0, False, -1, -1, -1, 1 << 22)
    builder.append(0, 1_700_000_000_000, key, b"v" * value_size, headers)
    builder.append(1, 1_700_000_000_001, None, b"v", [("traceparent", b"second")])
    data = bytes(builder.build())
    expected = _expected(headers, keys)
    (now,) = walk(data, header_keys=keys)
    assert expected == now.headers
    (later,) = walk(data, header_keys=keys, defer=True)
    if later.first_record is not None:
        assert expected == _batches.read_headers(later.first_record, keys)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=20_000), st.binary(min_size=1, max_size=60))
def test_a_gzip_batch_is_inflated_only_as_far_as_its_first_record(value_size: int, header: bytes) -> None:
    """A fetched gzip batch's wanted headers are read from its first record alone, inflated as far
    as its length says (one to three bytes of length), and read as in the same batch uncompressed."""
    batches = []
    for codec in (0, 1):
        builder = DefaultRecordBatchBuilder(2, codec, False, -1, -1, -1, 1 << 20)
        builder.append(0, 1_700_000_000_000, None, b"v" * value_size, [("x", b"y"), ("traceparent", header)])
        builder.append(1, 1_700_000_000_001, None, b"w" * 3000, [("traceparent", b"second")])
        batches.append(bytes(builder.build()))
    plain, gzipped = (walk(b, header_keys=frozenset({"traceparent"})) for b in batches)
    assert Compression.GZIP == gzipped[0].compression
    assert (("traceparent", header),) == plain[0].headers == gzipped[0].headers
