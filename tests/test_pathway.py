"""The pathway context: Datadog's test vectors, malformed input, merging, aggregation (the agent
payload itself is checked by Datadog's test agent, in tests/interop)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkahooks.datastreams import (
    DataStreams,
    PathwayContext,
    Point,
    StatsBucket,
    decode,
    decode_errors,
    decode_str,
    encode_str,
    fnv1_64,
    from_headers,
    merge_contexts,
    node_hash,
    pathway_hash,
)
from kafkahooks.datastreams._pathway import _read_varint, _varint

T0 = 1_700_000_000_000
OUT_ORDERS = ("direction:out", "topic:orders", "type:kafka")
IN_ORDERS = ("direction:in", "group:g1", "topic:orders", "type:kafka")
OUT_ENRICHED = ("direction:out", "topic:enriched", "type:kafka")


class Capture:
    """An exporter that keeps what it is given."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self.buckets: list[StatsBucket] = []

    def export_points(self, service: str, env: str, points: Sequence[Point]) -> None:
        self.points.extend(points)

    def export_buckets(self, service: str, env: str, buckets: Sequence[StatsBucket]) -> None:
        self.buckets.extend(buckets)


def streams(service: str, capture: Capture | None = None) -> DataStreams:
    return DataStreams(service, "prod", exporters=[capture or Capture()])


def test_fnv1_is_fnv1_not_fnv1a() -> None:
    """FNV-1 multiplies before it xors (FNV-1a of "a" would be af63dc4c8601ec8c)."""
    assert 0xCBF29CE484222325 == fnv1_64(b"")
    assert 0xAF63BD4C8601B7BE == fnv1_64(b"a")


def test_reference_vectors() -> None:
    """The four checkpoints of reference/datastreams.md: hashes, header values and latencies."""
    a, b = streams("svc-a"), streams("svc-b")
    assert 0x348A8A2128256DB7 == node_hash("svc-a", "prod", OUT_ORDERS)
    produced, edge, path = a.compute(OUT_ORDERS, None, T0)
    assert (0xAF611DF36FC67C4D, T0, T0, 0, 0) == (
        produced.hash,
        produced.pathway_start_ms,
        produced.edge_start_ms,
        edge,
        path,
    )
    assert "TXzGb/MdYa+AoKv++WKAoKv++WI=" == encode_str(produced)
    assert bytes.fromhex("4d7cc66ff31d61af80a0abfef96280a0abfef962") == produced.encode()

    assert 0x5AD5D87DE00F8BCA == node_hash("svc-b", "prod", IN_ORDERS)
    consumed, edge, path = b.compute(IN_ORDERS, decode_str("TXzGb/MdYa+AoKv++WKAoKv++WI="), T0 + 250)
    assert (0x25E096849B19C311, 250, 250) == (consumed.hash, edge, path)
    assert "EcMZm4SW4CWAoKv++WL0o6v++WI=" == encode_str(consumed)

    assert 0x2A32606E682417A9 == node_hash("svc-b", "prod", OUT_ENRICHED)
    forwarded, edge, path = b.compute(OUT_ENRICHED, consumed, T0 + 300)
    assert (0x3B2B78B605DD2D58, 50, 300) == (forwarded.hash, edge, path)
    assert "WC3dBbZ4KzuAoKv++WLYpKv++WI=" == encode_str(forwarded)

    orphan, edge, path = b.compute(IN_ORDERS, None, T0 + 1000)
    assert (0x8CB1C15616FDAE0B, 0, 0) == (orphan.hash, edge, path)
    assert "C679FlbBsYzQr6v++WLQr6v++WI=" == encode_str(orphan)
    assert pathway_hash("svc-b", "prod", IN_ORDERS, 0) == orphan.hash


def test_headers_prefer_base64_and_accept_the_legacy_raw_key() -> None:
    """dd-pathway-ctx-base64 wins; the legacy dd-pathway-ctx is read raw, then as base64."""
    ctx = PathwayContext(0xAF611DF36FC67C4D, T0, T0)
    other = PathwayContext(0x25E096849B19C311, T0, T0 + 250)
    assert ctx == from_headers([("dd-pathway-ctx", other.encode()), ("dd-pathway-ctx-base64", ctx.encode_b64())])
    assert ctx == from_headers([("dd-pathway-ctx", ctx.encode())])
    assert ctx == from_headers([("dd-pathway-ctx", ctx.encode_b64())])
    assert from_headers([("other", b"x")]) is None
    assert from_headers(None) is None


@pytest.mark.parametrize(
    "value",
    [
        b"not base64!!",
        base64.b64encode(b"\x01" * 8 + b"\x80"),  # truncated varint
        base64.b64encode(b"\x01" * 8 + b"\xff" * 12),  # overflowing varint
        base64.b64encode(b"\x00" * 8 + b"\x02\x02"),  # hash 0
        base64.b64encode(PathwayContext(1, 2, 3).encode() + b"\x00"),  # trailing byte
        b"",
        "\u00e9\u00e9",
        base64.b64encode(b"\x01" * 1_000_000),
        None,
    ],
)
def test_malformed_headers_mean_a_new_origin_and_are_counted(value: Any) -> None:
    """Anything malformed decodes to None (a new pathway) and moves the decode-error counter."""
    before = decode_errors()
    assert from_headers([("dd-pathway-ctx-base64", value)]) is None
    assert decode_errors() > before


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoding_never_raises(data: bytes) -> None:
    """Arbitrary bytes decode to a context or None, raw or as base64."""
    for ctx in (decode(data), decode_str(base64.b64encode(data))):
        assert ctx is None or ctx.hash != 0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 2**64 - 1), st.integers(-(2**62), 2**62), st.integers(-(2**62), 2**62))
def test_encoding_round_trips(h: int, start: int, edge: int) -> None:
    """Any context survives encode/decode, negative and huge timestamps included."""
    ctx = PathwayContext(h, start, edge)
    assert ctx == decode(ctx.encode()) == decode_str(encode_str(ctx))


def test_latencies_are_clamped_for_clocks_in_the_future() -> None:
    """A parent stamped in the future gives zero latencies, never negative ones."""
    future = PathwayContext(0x1234, T0 + 60_000, T0 + 60_000)
    _, edge, path = streams("svc").compute(IN_ORDERS, future, T0)
    assert (0, 0) == (edge, path)


def test_merge_keeps_the_oldest_pathway_deterministically() -> None:
    """Fan-in keeps the earliest pathway start, then edge start, then smallest hash; Nones ignored."""
    old, new = PathwayContext(9, T0, T0 + 5), PathwayContext(1, T0 + 1, T0 + 1)
    tie = PathwayContext(3, T0, T0 + 5)
    assert old == merge_contexts(new, None, old)
    assert tie == merge_contexts(old, tie) == merge_contexts(tie, old)
    assert merge_contexts(None, None) is None


def test_buckets_align_to_ten_seconds_and_weights_are_record_counts() -> None:
    """Checkpoints land in epoch-aligned 10 s buckets; sketches count records, not checkpoints."""
    capture = Capture()
    ds = streams("svc", capture)
    ctx, _, _ = ds.compute(OUT_ORDERS, None, T0)
    base_ns = T0 * 1_000_000
    for at_ns, weight in ((base_ns + 1, 100), (base_ns + 9_999_999_999, 50), (base_ns + 10_000_000_000, 7)):
        ds.record(OUT_ORDERS, ctx.hash, 0, 20, 30, weight=weight, payload_bytes=120.0, at_ns=at_ns)
    ds.flush(final=True)
    starts = sorted(b.start_ns for b in capture.buckets)
    assert all(s % 10_000_000_000 == 0 for s in starts)
    assert 2 == len(starts)
    groups = [g for b in sorted(capture.buckets, key=lambda b: b.start_ns) for g in b.groups.values()]
    assert [150, 7] == [g.messages for g in groups]
    assert [150.0, 7.0] == [g.edge_latency.count for g in groups]
    assert pytest.approx(0.020, rel=0.01) == groups[0].edge_latency.get_quantile_value(0.5)


def test_full_buffer_drops_and_counts() -> None:
    """A full buffer refuses new items and counts every one it refused, never blocking."""
    from kafkahooks.export import BoundedBuffer

    buffer: BoundedBuffer[int] = BoundedBuffer("test", 10)
    assert (10, 15) == (sum(buffer.offer(i) for i in range(25)), buffer.dropped)
    assert list(range(10)) == buffer.drain()
    assert buffer.offer(99)


def test_every_checkpoint_is_queued_drained_or_counted() -> None:
    """With the worker draining concurrently, offered = drained + waiting + dropped, exactly."""
    ds = DataStreams("svc", "prod", exporters=[Capture()], capacity=10)
    ctx, _, _ = ds.compute(OUT_ORDERS, None, T0)
    accepted = sum(ds.record(OUT_ORDERS, ctx.hash, 0, 1, 1) for _ in range(2500))
    assert len(ds.buffer) <= 10
    ds.flush()
    assert accepted == ds.buffer.accepted
    assert 2500 == accepted + ds.dropped


def test_failing_exporter_is_counted_and_others_still_run() -> None:
    """An exporter that raises does not stop the others or the aggregation."""
    from kafkahooks._selfstats import snapshot

    class Broken(Capture):
        def export_points(self, service: str, env: str, points: Sequence[Point]) -> None:
            raise OSError("collector down")

    good = Capture()
    ds = DataStreams("svc", "prod", exporters=[Broken(), good])
    before = snapshot().get("datastreams_export_errors", 0)
    ds.checkpoint(OUT_ORDERS)
    ds.flush()
    assert 1 == len(good.points)
    assert snapshot()["datastreams_export_errors"] == before + 1


@given(st.integers(min_value=0, max_value=2**63 - 1))
def test_varint_round_trips(value: int) -> None:
    """Every LEB128 encoding decodes to its value, the six-byte millisecond fast path included."""
    encoded = _varint(value)
    assert (value, len(encoded)) == _read_varint(encoded, 0)
    assert encoded[-1] < 0x80
    assert all(b >= 0x80 for b in encoded[:-1])


def test_varint_of_a_millisecond_timestamp_is_six_bytes() -> None:
    """A zigzagged Unix time in milliseconds (what a producer encodes per batch) takes six bytes."""
    now_ms = 1_796_400_000_000  # 2026-12
    assert 6 == len(_varint(now_ms << 1))
    assert (now_ms << 1, 6) == _read_varint(_varint(now_ms << 1), 0)
