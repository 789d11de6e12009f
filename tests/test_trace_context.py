"""Parsing trace context from record headers: strict, counted, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kafkahooks.tracing import context_from_headers, decode_errors, format_traceparent, parse_traceparent

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
