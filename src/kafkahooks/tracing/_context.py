"""W3C trace context on Kafka records: strict, allocation-light parsing and formatting, and the
process-wide table that maps consumed records to the creation context of their producer batch.

Consumed headers come from any producer and are treated as hostile: keys are matched exactly
(Kafka header keys are case-sensitive; ``Traceparent`` is not a trace context), values longer than
W3C allows are refused unread, nothing is cached here (:mod:`~kafkahooks.tracing._carriers` keeps
the one bounded table of contexts read), and a refusal is logged with the header's name, its
length and the reason, never a byte of its value (rate-limited).
``tracestate`` is parsed here too, never by OpenTelemetry's ``TraceState.from_header``, which
logs every malformed member raw.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import OrderedDict, deque
from operator import itemgetter
from typing import Any

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from kafkahooks import _fork
from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_TRACEPARENT = 256
"""Longest ``traceparent`` looked at (version 00 is 55 bytes; later versions may append fields)."""
MAX_TRACESTATE = 1024
"""Longest ``tracestate`` looked at (W3C: 32 members; propagators keep at least 512 characters)."""
_MAX_MEMBERS = 32

_logger = get_logger(__name__)
_bad_header_log = RateLimitedLog(_logger, 60.0)
_HEX = frozenset(b"0123456789abcdef")
_KEY = r"(?:[a-z0-9][_0-9a-z\-\*\/]{0,255}|[a-z0-9][_0-9a-z\-\*\/]{0,240}@[a-z][_0-9a-z\-\*\/]{0,13})"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = re.compile(f"({_KEY})=({_VALUE})")
decode_errors = counter(
    "trace_context_decode_errors",
    "Malformed trace-context headers seen on records, in any carrier (each meant: no context)",
)


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except Exception:
        return None


def _bad(header: str, value: Any, reason: str) -> None:
    """Count a refused header and log, at most once a minute per header and reason, its name, its
    length and why: never its value, which a producer controls (log forging, terminal escapes)."""
    decode_errors.add()
    _bad_header_log.warning(
        (header, reason), "trace_context_invalid", header=header, length=_length(value), reason=reason
    )


def parse_traceparent(value: Any, tracestate: Any = None) -> SpanContext | None:  # noqa: PLR0911 - a return per way to be malformed
    """A remote :class:`SpanContext` from a ``traceparent`` header value, or ``None``.

    Accepts bytes or str; anything malformed (not ASCII, wrong length or shape, upper-case or
    non-hex digits, version ``ff``, all-zero ids, longer than :data:`MAX_TRACEPARENT`) is counted
    in :data:`decode_errors` and means no context. A malformed ``tracestate`` is dropped (counted)
    and the context kept without it. Never raises, never logs a value.
    """
    if isinstance(value, (bytes, str)) and len(value) > MAX_TRACEPARENT:
        _bad(TRACEPARENT, value, "too long")
        return None
    try:
        raw = value.encode("ascii") if isinstance(value, str) else bytes(value)
    except Exception:
        _bad(TRACEPARENT, value, "not bytes or ASCII")
        return None
    if len(raw) < 55 or raw[2:3] != b"-" or raw[35:36] != b"-" or raw[52:53] != b"-":
        _bad(TRACEPARENT, raw, "shape")
        return None
    version = raw[0:2]
    if not _HEX.issuperset(version) or version == b"ff" or (version == b"00" and len(raw) != 55):
        _bad(TRACEPARENT, raw, "version")
        return None
    if len(raw) > 55 and raw[55:56] != b"-":
        _bad(TRACEPARENT, raw, "trailing data")
        return None
    trace_hex, span_hex, flags_hex = raw[3:35], raw[36:52], raw[53:55]
    if not (_HEX.issuperset(trace_hex) and _HEX.issuperset(span_hex) and _HEX.issuperset(flags_hex)):
        _bad(TRACEPARENT, raw, "not lower-case hex")
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        _bad(TRACEPARENT, raw, "zero id")
        return None
    state = parse_tracestate(tracestate) if tracestate else None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags_hex, 16)), trace_state=state)


def parse_tracestate(value: Any) -> TraceState | None:
    """A :class:`TraceState` from a ``tracestate`` header value (W3C members ``key=value``, at most
    32), or None (counted) when it is malformed in any way. Never raises, never logs a value."""
    if not isinstance(value, (bytes, bytearray, str)) or len(value) > MAX_TRACESTATE:
        _bad(TRACESTATE, value, "too long" if isinstance(value, (bytes, bytearray, str)) else "not bytes or str")
        return None
    try:
        text = value if isinstance(value, str) else bytes(value).decode("ascii")
    except UnicodeDecodeError:
        _bad(TRACESTATE, value, "not ASCII")
        return None
    pairs: dict[str, str] = {}
    for raw in text.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        match = _MEMBER.fullmatch(member)
        if match is None or match.group(1) in pairs or len(pairs) == _MAX_MEMBERS:
            _bad(TRACESTATE, value, "member format" if match is None else "duplicate or too many members")
            return None
        pairs[match.group(1)] = match.group(2)
    return TraceState(list(pairs.items())) if pairs else None


def format_traceparent(ctx: SpanContext) -> bytes:
    """The ``traceparent`` header value of ``ctx``."""
    return b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, int(ctx.trace_flags))


MAX_CONTEXT_BATCHES = 16_384
"""Fetched batches :class:`BatchContexts` remembers per partition: as many as a consumer remembers
until they are handed out (``MAX_BATCHES_PER_PARTITION``), so one ``getmany``/``poll`` of the
smallest batches a partition fetch can return stays mapped whole."""
MAX_CONTEXT_BYTES = 8 * 1024 * 1024
"""What :class:`BatchContexts` may hold, in estimated bytes: header values by their length, plus
:data:`_ENTRY_BYTES` per batch and :data:`_HEADER_BYTES` per header (measured with tracemalloc:
312 bytes for a batch with one 55-byte ``traceparent``; this estimate says 305)."""
_ENTRY_BYTES = 160
_HEADER_BYTES = 90
_ONE_HEADER_BYTES = _ENTRY_BYTES + _HEADER_BYTES
_CONTEXT_BYTES = 200
"""A :class:`SpanContext` given as such (:meth:`BatchContexts.add`)."""

_base = itemgetter(0)

forgotten = counter(
    "record_contexts_forgotten",
    "Records looked up (record_context, process_span) whose batch the table of batch contexts had "
    "already forgotten to stay within its bounds",
)


class BatchContexts:
    """Creation contexts of recently handed-out producer batches, by (topic, partition, offset range).

    Filled as each fetched batch's records start going to the application (the first record of
    each batch carries its context) so any record of the batch can be mapped back to it, whatever
    poll list it arrives in. A batch is remembered by the carrier headers its first record had,
    read only when :meth:`lookup` asks (most batches are never asked about, and reading headers
    once per batch on the consumer's thread cost a seventh of what kafkahooks did there with
    one-record batches); a :class:`~kafkahooks.tracing.Carriers` reads them, with its bounded cache
    of contexts seen. A batch that directly follows the partition's last one (its base offset is
    the next) with equal headers extends that one's range instead of taking a slot: a producer
    whose batches open under one context costs one entry per run of them.

    Bounded three ways, oldest out first, least recently added-to partition first: ``per_partition``
    ranges per partition, ``partitions`` partitions, and ``max_bytes`` estimated bytes in all (header
    values by their length). A lookup that misses because its batch was forgotten is counted in
    ``record_contexts_forgotten``.
    """

    def __init__(
        self,
        per_partition: int = MAX_CONTEXT_BATCHES,
        partitions: int = 1024,
        max_bytes: int = MAX_CONTEXT_BYTES,
    ) -> None:
        self._per_partition = per_partition
        self._partitions = partitions
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = _fork.Lock()
        self._table: OrderedDict[tuple[str, int], deque[tuple[int, int, Any, Any, int]]] = OrderedDict()
        self._last: tuple[tuple[str, int], deque[tuple[int, int, Any, Any, int]]] | None = None
        """The partition added to last and its ranges (consecutive batches of one partition skip
        the table's lookup and reordering)."""
        self._removals = 0
        """Bumped whenever ranges go (a seek back, a bound): a remembered hit is good while it holds."""
        self._hit: tuple[tuple[str, int], int, int, SpanContext | None, int] = (("", -1), 0, -1, None, -1)
        """The last range found (key, first, last, context, removals then): a caller mapping a
        batch's records one by one finds the rest of them here, without the lock or a read."""
        self._trimmed: dict[tuple[str, int], int] = {}
        """Per partition that lost ranges to a bound, the highest offset it forgot (at most
        ``partitions`` keys, oldest out): what tells a forgotten batch from one never seen."""

    def add(self, topic: str, partition: int, base_offset: int, last_offset: int, ctx: SpanContext) -> None:
        """Remember ``ctx`` as the creation context of the batch's records."""
        self._append((topic, partition), base_offset, last_offset, ctx, None, _CONTEXT_BYTES)

    def add_headers(
        self, topic: str, partition: int, base_offset: int, last_offset: int, headers: Any, reader: Any
    ) -> None:
        """Remember the batch's first-record carrier ``headers`` (bounded pairs, as the batch walk
        kept them), to be read by ``reader.extract`` when a record of the batch is looked up."""
        self._append((topic, partition), base_offset, last_offset, headers, reader, 0)

    def _append(self, key: tuple[str, int], base: int, last_offset: int, value: Any, reader: Any, weight: int) -> None:
        with self._lock:
            last = self._last
            if last is not None and last[0] == key:
                ranges = last[1]
            else:
                table = self._table
                found = table.get(key)
                if found is None:
                    ranges = table[key] = deque()
                    if len(table) > self._partitions:
                        self._forget(*table.popitem(last=False))
                else:
                    ranges = found
                    table.move_to_end(key)
                self._last = (key, ranges)
            if ranges:
                prev = ranges[-1]
                if prev[1] + 1 == base:
                    if prev[2] == value and prev[3] is reader:
                        ranges[-1] = (prev[0], last_offset, value, reader, prev[4])
                        return
                elif prev[0] >= base:
                    if prev[0] == base and prev[1] == last_offset:
                        return  # the same batch again (handed out in parts)
                    self._rewind(ranges, base)
            if reader is not None:
                if len(value) == 1:
                    weight = _ONE_HEADER_BYTES + len(value[0][1])
                else:
                    weight = _ENTRY_BYTES
                    for header in value:
                        weight += _HEADER_BYTES + len(header[1])
            ranges.append((base, last_offset, value, reader, weight))
            held = self._bytes = self._bytes + weight
            if len(ranges) > self._per_partition:
                self._forget(key, ranges, 1)
            if held > self._max_bytes:
                self._trim()

    def _rewind(self, ranges: deque[tuple[int, int, Any, Any, int]], base: int) -> None:
        """The partition is read again from ``base`` (a seek back): the ranges from there on are
        superseded by what comes now, and go, so bases stay increasing for :meth:`lookup`'s
        bisection; lock held."""
        self._removals += 1
        while ranges and ranges[-1][0] >= base:
            self._bytes -= ranges.pop()[4]

    def _forget(self, key: tuple[str, int], ranges: deque[tuple[int, int, Any, Any, int]], count: int = 0) -> None:
        """Drop the ``count`` oldest of a partition's ranges (all of them when 0); lock held."""
        if not ranges:
            return
        self._removals += 1
        highest = ranges[-1][1] if count == 0 else ranges[count - 1][1]
        for _ in range(count or len(ranges)):
            self._bytes -= ranges.popleft()[4]
        trimmed = self._trimmed
        trimmed[key] = max(highest, trimmed.pop(key, highest))
        if len(trimmed) > self._partitions:
            del trimmed[next(iter(trimmed))]

    def _trim(self) -> None:
        """Forget the oldest ranges of the least recently added-to partitions until the table is
        within its byte budget (the partition added to last keeps at least its newest range)."""
        table = self._table
        while self._bytes > self._max_bytes:
            key, ranges = next(iter(table.items()))
            if len(table) == 1 and len(ranges) <= 1:
                return
            self._forget(key, ranges, 1)
            if not ranges:
                del table[key]

    @property
    def size(self) -> tuple[int, int]:
        """(ranges, estimated bytes) held now."""
        with self._lock:
            return sum(len(r) for r in self._table.values()), self._bytes

    def lookup(self, topic: str, partition: int, offset: int) -> SpanContext | None:
        """The creation context of the batch that holds ``offset``, or None."""
        found = self.lookup_range(topic, partition, offset)
        return None if found is None else found[2]

    def lookup_range(self, topic: str, partition: int, offset: int) -> tuple[int, int, SpanContext | None] | None:
        """(first offset, last offset, creation context) of the range that holds ``offset`` (a
        batch, or a run of batches with equal headers), or None: every record in it has that
        context, so a caller mapping many records looks up once per range."""
        key = (topic, partition)
        hit = self._hit
        if hit[1] <= offset <= hit[2] and hit[0] == key and hit[4] == self._removals:
            return hit[1], hit[2], hit[3]
        found = None
        with self._lock:
            removals = self._removals
            ranges = self._table.get(key)
            if ranges:
                at = bisect_right(ranges, offset, key=_base) - 1  # bases increase: see _rewind
                if at >= 0 and offset <= ranges[at][1]:
                    found = ranges[at]
            if found is None:
                if offset <= self._trimmed.get(key, -1) and (not ranges or offset < ranges[0][0]):
                    forgotten.add()
                return None
        value, reader = found[2], found[3]
        ctx = value if reader is None else reader.extract(value)
        self._hit = (key, found[0], found[1], ctx, removals)
        return found[0], found[1], ctx


batch_contexts = BatchContexts()
"""The process-wide table the consumer-side tracing plugin fills."""
