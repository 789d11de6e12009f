"""Parsing trace context from record headers: strict, counted, never raising."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkahooks._selfstats import snapshot
from kafkahooks.tracing import context_from_headers, decode_errors, format_traceparent, parse_traceparent


def forgotten() -> int:
    return snapshot().get("record_contexts_forgotten", 0)


VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_valid_value_round_trips() -> None:
    """A valid traceparent parses to a remote, sampled context that formats back identically."""
    ctx = parse_traceparent(VALID)
    assert ctx is not None
    assert (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, True) == (
        ctx.trace_id,
        ctx.span_id,
        ctx.is_remote,
        ctx.trace_flags.sampled,
    )
    assert VALID == format_traceparent(ctx)
    assert ctx == parse_traceparent(VALID.decode())


def test_future_version_may_carry_more_fields() -> None:
    """Versions above 00 may append fields after a dash (W3C forward compatibility)."""
    assert parse_traceparent(b"01" + VALID[2:] + b"-what-ever") is not None


@pytest.mark.parametrize(
    "value",
    [
        VALID[:-1],  # truncated
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        VALID.upper(),  # upper-case hex
        b"00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  # not hex
        b"ff" + VALID[2:],  # forbidden version
        VALID + b"-extra",  # version 00 has no trailing fields
        b" " + VALID,  # whitespace
        VALID + b" ",
        b"\xff\xfe",  # not UTF-8
        b"",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0\u00e9",  # non-ASCII str
        None,
        12345,
    ],
)
def test_malformed_values_mean_no_context_and_are_counted(value: object) -> None:
    """Each malformed value yields None and moves the decode-error counter; nothing raises."""
    before = decode_errors()
    assert parse_traceparent(value) is None
    assert decode_errors() == before + 1


@pytest.mark.parametrize(
    "headers",
    [None, [], [("traceparent", None)], [("traceparent",)], [(b"traceparent", VALID)], [(None, b"x")], "nonsense"],
)
def test_odd_header_shapes_never_raise(headers: object) -> None:
    """Header lists of any shape are read without raising; bytes keys are accepted."""
    result = context_from_headers(headers)  # type: ignore[arg-type]
    if headers == [(b"traceparent", VALID)]:
        assert result is not None
    else:
        assert result is None


def test_consumed_header_keys_match_exactly() -> None:
    """Kafka header keys are case-sensitive: a header named Traceparent is not a trace context, and
    neither is a traceparent carried inside another header's value."""
    assert context_from_headers([("Traceparent", VALID)]) is None
    assert context_from_headers([("x-carrier", b"\x16traceparent" + VALID)]) is None
    assert context_from_headers([("Traceparent", b"bad"), ("traceparent", VALID)]) is not None


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(max_size=80), st.text(max_size=80)))
def test_arbitrary_values_never_raise(value: bytes | str) -> None:
    """Any bytes or text parse to a context or to None, never an exception."""
    ctx = parse_traceparent(value)
    if ctx is not None:
        assert ctx.is_valid


def test_batch_contexts_read_headers_when_looked_up() -> None:
    """A batch remembered by its headers is read only when one of its records is looked up: a
    bad traceparent moves the counter at the lookup, not when the batch is added; contexts given
    as such come back as they were; later batches of a partition win where ranges overlap."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from kafkahooks.tracing import BatchContexts, Carriers

    table = BatchContexts()
    reader = Carriers(TraceContextTextMapPropagator())
    ctx = parse_traceparent(VALID)
    before = decode_errors()
    table.add_headers("t", 0, 10, 19, (("traceparent", VALID),), reader)
    table.add_headers("t", 0, 20, 29, (("traceparent", b"00-bad"),), reader)
    table.add("t", 1, 0, 9, ctx)  # type: ignore[arg-type]
    assert before == decode_errors(), "nothing is read when a batch is added"
    assert ctx == table.lookup("t", 0, 10) == table.lookup("t", 0, 19) == table.lookup("t", 1, 5)
    assert table.lookup("t", 0, 25) is None
    assert before + 1 == decode_errors(), "the bad value is counted when read"
    assert [None, None, None] == [table.lookup("t", 0, 9), table.lookup("t", 0, 30), table.lookup("u", 0, 10)]
    other = parse_traceparent(VALID[:-2] + b"00")
    table.add("t", 0, 15, 15, other)  # type: ignore[arg-type]  # a re-fetched, later batch
    assert other == table.lookup("t", 0, 15)


def span_context(n: int) -> Any:
    """A valid context whose span id is ``n`` (distinct contexts for distinct ``n``)."""
    return parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-%016x-01" % (n + 1))


def test_batch_contexts_stay_bounded_per_partition_and_in_partitions() -> None:
    """At most ``per_partition`` batches per partition (oldest out) and ``partitions`` partitions
    (least recently added to out), whichever partition was added to last; a lookup of a forgotten
    batch is counted, one of a batch never seen is not."""
    from kafkahooks.tracing import BatchContexts

    c = [span_context(n) for n in range(8)]
    table = BatchContexts(per_partition=3, partitions=2)
    before = forgotten()
    for base in range(5):
        table.add("t", 0, base, base, c[base])
    assert [None, None, c[2], c[3], c[4]] == [table.lookup("t", 0, o) for o in range(5)]
    assert before + 2 == forgotten()
    table.add("t", 1, 0, 0, c[5])
    table.add("t", 0, 5, 5, c[6])  # partition 0 used again: 1 is oldest
    table.add("t", 2, 0, 0, c[7])  # a third partition: 1 goes
    assert (c[6], None, c[7]) == (table.lookup("t", 0, 5), table.lookup("t", 1, 0), table.lookup("t", 2, 0))
    table.add("t", 3, 0, 0, c[0])  # partition 0 goes; 2 was added to last
    table.add("t", 2, 1, 1, c[1])
    assert (None, c[1], c[0]) == (table.lookup("t", 0, 5), table.lookup("t", 2, 1), table.lookup("t", 3, 0))
    assert before + 4 == forgotten()
    assert (None, None) == (table.lookup("t", 3, 1), table.lookup("u", 0, 0))
    assert before + 4 == forgotten(), "batches never seen are not counted"


def test_batch_contexts_merge_a_run_of_batches_with_equal_headers() -> None:
    """Batches that follow each other directly (next base offset) with equal headers share one
    range, so a run of one-context batches longer than the per-partition bound stays mapped;
    a gap in the offsets, other headers or another reader start a new range."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from kafkahooks.tracing import BatchContexts, Carriers

    reader, other_reader = (Carriers(TraceContextTextMapPropagator()) for _ in range(2))
    table = BatchContexts(per_partition=4)
    for base in range(0, 2000, 2):  # each batch's headers are a copy, as the walk makes them
        table.add_headers("t", 0, base, base + 1, (("traceparent", bytes(bytearray(VALID))),), reader)
    assert (1, table.size[1]) == table.size
    assert all(parse_traceparent(VALID) == table.lookup("t", 0, o) for o in range(2000))
    other = format_traceparent(span_context(1))
    table.add_headers("t", 0, 2001, 2001, (("traceparent", VALID),), reader)  # a gap: offset 2000
    table.add_headers("t", 0, 2002, 2002, (("traceparent", other),), reader)
    table.add_headers("t", 0, 2003, 2003, (("traceparent", other),), other_reader)
    assert (4, None) == (table.size[0], table.lookup("t", 0, 2000))
    assert [parse_traceparent(VALID), span_context(1), span_context(1)] == [
        table.lookup("t", 0, o) for o in (2001, 2002, 2003)
    ]


def test_batch_contexts_read_again_after_a_seek_back() -> None:
    """A partition read again from an earlier offset (a seek, a rebalance) supersedes the ranges
    from there on: the re-read batches win, earlier ones stay, and lookups still bisect."""
    from kafkahooks.tracing import BatchContexts

    c = [span_context(n) for n in range(6)]
    table = BatchContexts()
    for i in range(3):
        table.add("t", 0, 10 * i, 10 * i + 9, c[i])
        table.add("t", 0, 10 * i, 10 * i + 9, c[i])  # a batch handed out in parts: one range
    assert 3 == table.size[0]
    table.add("t", 0, 10, 14, c[3])  # read again from 10, into other batches
    table.add("t", 0, 15, 19, c[4])
    assert [c[0], c[3], c[4], None] == [table.lookup("t", 0, o) for o in (9, 14, 15, 25)]
    assert 3 == table.size[0]
    table.add("t", 0, 20, 29, c[5])
    assert [c[0], c[3], c[4], c[5], None] == [table.lookup("t", 0, o) for o in (0, 10, 19, 29, 30)]


def test_batch_contexts_stay_within_their_byte_budget() -> None:
    """Header values weigh by their length: past ``max_bytes`` the least recently added-to
    partitions lose their oldest ranges first; a batch of the partition added to last survives."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from kafkahooks.tracing import BatchContexts, Carriers

    reader = Carriers(TraceContextTextMapPropagator())
    table = BatchContexts(max_bytes=64 * 1024)
    heavy = b"k=" + b"v" * 8000  # a hostile producer's tracestate, as long as the walk keeps
    parents = [("traceparent", format_traceparent(span_context(base))) for base in range(20)]
    for base in range(20):  # as a poll hands batches out: partition by partition
        table.add_headers("t", 0, base, base, (parents[base], ("tracestate", heavy)), reader)
    for base in range(20):
        table.add_headers("t", 1, base, base, (parents[base],), reader)
    ranges, held = table.size
    assert held <= 64 * 1024
    assert 20 == sum(table.lookup("t", 1, o) is not None for o in range(20)), "light partition kept whole"
    kept = [o for o in range(20) if table.lookup("t", 0, o) is not None]
    assert kept == list(range(20 - len(kept), 20)), "the heavy one kept its newest"
    assert 0 < len(kept) < 8
    assert 20 + len(kept) == ranges
    table.add_headers("u", 0, 0, 0, (("tracestate", heavy * 9),), reader)  # one range over the budget
    assert table.lookup("u", 0, 0) is None  # read: a tracestate alone is no context
    assert 1 == table.size[0], "kept alone"


record = namedtuple("record", "topic partition offset headers")


def test_process_span_finds_what_record_context_finds_reading_each_batch_once() -> None:
    """``process_span``'s contexts are the distinct ``record_context`` ones, whatever the records:
    own headers winning over the table, runs inside one range, interleaved partitions, offsets
    going back, batches never seen, and records of odd shapes; a partition's records in offset
    order read each batch's stored headers once, not once per record."""
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from kafkahooks.tracing import Carriers, record_context
    from kafkahooks.tracing._context import batch_contexts as table
    from kafkahooks.tracing._process import batch_contexts

    class Counting(Carriers):
        reads = 0

        def extract(self, headers: Any) -> Any:
            Counting.reads += 1
            return super().extract(headers)

    reader = Counting(TraceContextTextMapPropagator())
    for base in range(0, 100, 10):  # partitions 0 and 1 of "pc": ten ten-record batches each
        for p in (0, 1):
            own = (("traceparent", format_traceparent(span_context(1000 + 100 * p + base))),)
            table.add_headers("pc", p, base, base + 9, own, reader)
    mine = format_traceparent(span_context(7))
    records: list[Any] = [record("pc", p, o, []) for o in range(100) for p in (0, 1)]  # interleaved
    records += [record("pc", 0, 55, [("traceparent", mine)]), record("pc", 0, 3, []), record("pc", 2, 0, [])]
    records += [record("pc", 1, 150, None), object(), record("pc", "x", "y", 5)]
    expected = {(c.trace_id, c.span_id) for r in records if (c := record_context(r)) is not None}
    found = batch_contexts(records)
    assert expected == {(c.trace_id, c.span_id) for c in found}
    assert len(found) == len(expected) == 21  # 20 batches' and the record's own
    table.lookup("pc", 1, 95)  # the range remembered last: not one the ordered pass starts in
    Counting.reads = 0
    assert 20 == len(batch_contexts(sorted(records[:200], key=lambda r: (r.partition, r.offset))))
    assert 20 == Counting.reads, "in partition order: each batch's headers read once"


def test_the_remembered_hit_never_outlives_its_range() -> None:
    """Looking up the records of one batch one by one reuses the range found first; a range that
    goes (read again from an earlier offset, or forgotten to a bound) is never answered from it."""
    from kafkahooks.tracing import BatchContexts

    c = [span_context(n) for n in range(4)]
    table = BatchContexts(per_partition=2)
    table.add("t", 0, 0, 9, c[0])
    assert [c[0]] * 10 == [table.lookup("t", 0, o) for o in range(10)]
    table.add("t", 0, 0, 4, c[1])  # read again from 0, into other batches
    assert (c[1], None) == (table.lookup("t", 0, 3), table.lookup("t", 0, 7))
    table.add("t", 0, 5, 9, c[2])
    assert c[2] == table.lookup("t", 0, 7)
    before = forgotten()
    table.add("t", 0, 10, 19, c[3])  # the bound of two: 0-4 goes
    assert (None, c[2], c[3]) == (table.lookup("t", 0, 3), table.lookup("t", 0, 7), table.lookup("t", 0, 15))
    assert before + 1 == forgotten()
    assert (None, None) == (table.lookup("t", 1, 7), table.lookup("u", 0, 7)), "another partition's offset"
