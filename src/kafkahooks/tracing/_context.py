"""W3C trace context on Kafka records: strict, allocation-light parsing and formatting, and the
process-wide table that maps consumed records to the creation context of their producer batch."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_logger = get_logger(__name__)
_bad_header_log = RateLimitedLog(_logger, 60.0)
_HEX = frozenset(b"0123456789abcdef")
decode_errors = counter(
    "trace_context_decode_errors", "Malformed traceparent headers seen on records (each meant: no context)"
)


def _bad(value: Any, reason: str) -> None:
    decode_errors.add()
    _bad_header_log.warning("traceparent", "trace_context_invalid", reason=reason, value=repr(value)[:80])


def parse_traceparent(value: Any, tracestate: Any = None) -> SpanContext | None:  # noqa: PLR0911 - a return per way to be malformed
    """A remote :class:`SpanContext` from a ``traceparent`` header value, or ``None``.

    Accepts bytes or str; anything malformed (not ASCII, wrong length or shape, upper-case or
    non-hex digits, version ``ff``, all-zero ids) is counted in :data:`decode_errors` and means no
    context. Never raises.
    """
    try:
        raw = value.encode("ascii") if isinstance(value, str) else bytes(value)
    except Exception:
        _bad(value, "not bytes or ASCII")
        return None
    if len(raw) < 55 or raw[2:3] != b"-" or raw[35:36] != b"-" or raw[52:53] != b"-":
        _bad(value, "shape")
        return None
    version = raw[0:2]
    if not _HEX.issuperset(version) or version == b"ff" or (version == b"00" and len(raw) != 55):
        _bad(value, "version")
        return None
    if len(raw) > 55 and raw[55:56] != b"-":
        _bad(value, "trailing data")
        return None
    trace_hex, span_hex, flags_hex = raw[3:35], raw[36:52], raw[53:55]
    if not (_HEX.issuperset(trace_hex) and _HEX.issuperset(span_hex) and _HEX.issuperset(flags_hex)):
        _bad(value, "not lower-case hex")
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        _bad(value, "zero id")
        return None
    state = None
    if tracestate:
        try:
            text = tracestate.decode("ascii") if isinstance(tracestate, (bytes, bytearray)) else str(tracestate)
            state = TraceState.from_header([text])
        except Exception:
            state = None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16)), trace_state=state)


def format_traceparent(ctx: SpanContext) -> bytes:
    """The ``traceparent`` header value of ``ctx``."""
    return b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, int(ctx.trace_flags))


def find_header(headers: Iterable[tuple[Any, Any]] | None, key: str) -> Any:
    """The value of the first header named ``key`` (case-insensitive), or None; never raises."""
    if not headers:
        return None
    try:
        for item in headers:
            if len(item) == 2 and isinstance(item[0], (str, bytes)):
                name = item[0].decode("utf-8", "replace") if isinstance(item[0], bytes) else item[0]
                if name.lower() == key:
                    return item[1]
    except Exception:
        return None
    return None


_parsed: dict[tuple[Any, Any], SpanContext | None] = {}


def context_from_headers(headers: Iterable[tuple[Any, Any]] | None) -> SpanContext | None:
    """The creation context carried by record headers, or None (cached: batches repeat contexts)."""
    value = find_header(headers, TRACEPARENT)
    if value is None:
        return None
    state = find_header(headers, TRACESTATE)
    try:
        cache_key = (value, state)
        if cache_key in _parsed:
            cached = _parsed[cache_key]
            if cached is None:
                _bad(value, "seen before")
            return cached
    except TypeError:  # unhashable garbage: parse (and count) it without caching
        return parse_traceparent(value, state)
    ctx = parse_traceparent(value, state)
    if len(_parsed) >= 1024:
        _parsed.clear()
    _parsed[cache_key] = ctx
    return ctx


class BatchContexts:
    """Creation contexts of recently fetched producer batches, by (topic, partition, offset range).

    Filled from ``on_fetch_batch_read`` (the first record of each batch carries its context) so
    any record of the batch can be mapped back to it, whatever poll list it arrives in. Bounded:
    ``per_partition`` batches per partition, ``partitions`` partitions (least recently used first out).
    """

    def __init__(self, per_partition: int = 256, partitions: int = 4096) -> None:
        self._per_partition = per_partition
        self._partitions = partitions
        self._lock = threading.Lock()
        self._table: OrderedDict[tuple[str, int], deque[tuple[int, int, SpanContext]]] = OrderedDict()

    def add(self, topic: str, partition: int, base_offset: int, last_offset: int, ctx: SpanContext) -> None:
        key = (topic, partition)
        with self._lock:
            ranges = self._table.get(key)
            if ranges is None:
                ranges = self._table[key] = deque(maxlen=self._per_partition)
                if len(self._table) > self._partitions:
                    self._table.popitem(last=False)
            else:
                self._table.move_to_end(key)
            if not ranges or ranges[-1][0] != base_offset:
                ranges.append((base_offset, last_offset, ctx))

    def lookup(self, topic: str, partition: int, offset: int) -> SpanContext | None:
        with self._lock:
            ranges = self._table.get((topic, partition))
            if not ranges:
                return None
            for base, last, ctx in reversed(ranges):
                if base <= offset <= last:
                    return ctx
        return None


batch_contexts = BatchContexts()
"""The process-wide table the consumer-side tracing plugin fills."""


def record_context(record: Any) -> SpanContext | None:
    """The creation context of a consumed record (any client's ``ConsumerRecord``), or None.

    A context on the record itself (its own ``traceparent`` header) wins; otherwise the context of
    the producer batch it came from, as read by a consumer with ``tracing="hooks"`` in this process.
    """
    own = context_from_headers(getattr(record, "headers", None))
    if own is not None:
        return own
    try:
        return batch_contexts.lookup(record.topic, record.partition, record.offset)
    except Exception:
        return None
