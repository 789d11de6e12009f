"""Trace-context carriers on Kafka headers: whatever the application's propagator writes.

OpenTelemetry applications choose their carriers with ``OTEL_PROPAGATORS`` (or
``opentelemetry.propagate.set_global_textmap``): W3C ``tracecontext`` and ``baggage`` by default,
Zipkin's ``b3`` (one header) and ``b3multi`` (``x-b3-*``), ``jaeger`` (``uber-trace-id`` and
``uberctx-*``), or any other :class:`~opentelemetry.propagators.textmap.TextMapPropagator`.
:class:`Carriers` is that choice, resolved once per propagator:

- **Writing** (a producer batch's first record, or every record with ``tracing="records"``): the
  propagator itself writes the application's current context, so every format it speaks goes out,
  baggage included. The encoded headers are kept for the current context object, so a batch
  written from the same context as the one before costs an identity comparison.
- **Reading** (consumed records): each known format is parsed here, by strict, bounded parsers
  (exact keys, length limits, refusals counted and logged by header name, length and reason,
  never a byte of the value; contexts read are remembered in one bounded table per propagator,
  1 024 entries of at most 1.3 KB of values).
  OpenTelemetry's own propagators are never handed consumed bytes for these formats: the baggage
  propagator logs rejected values raw. A propagator kafkahooks does not know is called with the
  headers named by its ``fields``, each within :data:`MAX_VALUE`, and its failures are counted.
  As OpenTelemetry's composite propagator does, a later format that finds a valid context wins.

Header keys are case-sensitive in Kafka. The keys read are the ones OpenTelemetry writes (all
lower-case) plus, for B3's multi-header format, the canonical ``X-B3-TraceId`` spelling other
tracers (Brave, Sleuth) write: both exactly, nothing in between.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, TraceFlags

from kafkahooks._otel import current_context
from kafkahooks._selfstats import counter
from kafkahooks.tracing._context import (
    TRACEPARENT,
    TRACESTATE,
    batch_contexts,
    decode_errors,
    parse_traceparent,
)
from kafkahooks.tracing._context import _bad as refuse

MAX_VALUE = 8192
"""The longest consumed header value looked at, in any carrier (the W3C baggage limit)."""
MAX_HEADERS_SCANNED = 256
"""Headers of a consumed record looked at; a carrier key placed after them is not found."""
MAX_BAGGAGE_MEMBERS = 180
MAX_BAGGAGE_ENTRY = 4096
MAX_B3 = 68
"""``{32 hex}-{16 hex}-{1}-{16 hex}``: the longest valid single ``b3`` header."""
MAX_UBER_TRACE_ID = 128
"""``{32}:{16}:{16}:{2}`` hex is 69 bytes; ``%3A`` for each colon makes it 75."""
MAX_CACHED = 1024
"""Contexts each :class:`Carriers` remembers (then it starts over)."""
MAX_CACHED_BYTES = 1300
"""The longest carrier values (all of a record's together) whose context is remembered."""
MAX_OTHER_FIELDS = 16
"""Header keys taken from an unknown propagator's ``fields`` (at most this many, each at most 128 characters)."""

TRACECONTEXT, BAGGAGE, B3, B3MULTI, JAEGER, OTHER = "tracecontext", "baggage", "b3", "b3multi", "jaeger", "other"
B3_SINGLE = "b3"
UBER_TRACE_ID = "uber-trace-id"
UBERCTX = "uberctx-"
W3C_BAGGAGE = "baggage"
B3_TRACE_ID = ("x-b3-traceid", "X-B3-TraceId")
B3_SPAN_ID = ("x-b3-spanid", "X-B3-SpanId")
B3_SAMPLED = ("x-b3-sampled", "X-B3-Sampled")
B3_FLAGS = ("x-b3-flags", "X-B3-Flags")
_B3_KEYS = frozenset((B3_SINGLE, *B3_TRACE_ID, *B3_SPAN_ID, *B3_SAMPLED, *B3_FLAGS))

_KNOWN = {
    "opentelemetry.trace.propagation.tracecontext.TraceContextTextMapPropagator": TRACECONTEXT,
    "opentelemetry.baggage.propagation.W3CBaggagePropagator": BAGGAGE,
    "opentelemetry.propagators.b3.B3MultiFormat": B3MULTI,
    "opentelemetry.propagators.b3.B3Format": B3MULTI,
    "opentelemetry.propagators.b3.B3SingleFormat": B3,
    "opentelemetry.propagators.jaeger.JaegerPropagator": JAEGER,
}
"""OpenTelemetry's propagators by exact class (a subclass may read differently: it is "other")."""
_COMPOSITE = "opentelemetry.propagators.composite.CompositePropagator"
_CONTEXT_KEYS = {
    TRACECONTEXT: frozenset({TRACEPARENT, TRACESTATE}),
    BAGGAGE: frozenset(),  # baggage is read from records' own headers (record_baggage), never per batch
    B3: _B3_KEYS,  # OpenTelemetry's B3 propagators both read both formats
    B3MULTI: _B3_KEYS,
    JAEGER: frozenset({UBER_TRACE_ID}),
}

propagator_errors = counter(
    "trace_context_propagator_errors",
    "Failures of an application propagator kafkahooks called (each meant: no context)",
)

_HEX = frozenset(b"0123456789abcdefABCDEF")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAGGAGE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_B3_SAMPLED_VALUES = {
    b"1": True,
    b"d": True,
    b"true": True,
    b"True": True,
    b"0": False,
    b"false": False,
    b"False": False,
}


def _ascii(header: str, value: Any, limit: int) -> bytes | None:
    """``value`` as ASCII bytes, or None (counted and logged by name) when it is not, or too long."""
    if not isinstance(value, (bytes, bytearray, memoryview, str)):
        refuse(header, value, "not bytes or str")
        return None
    if len(value) > limit:
        refuse(header, value, "too long")
        return None
    raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    if not raw.isascii() or (isinstance(value, str) and not value.isascii()):
        refuse(header, value, "not ASCII")
        return None
    return raw


def _is_hex(raw: bytes, lengths: tuple[int, ...] | range) -> bool:
    return len(raw) in lengths and _HEX.issuperset(raw)


def _remote(trace_id: int, span_id: int, sampled: bool) -> SpanContext:
    return SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    )


def parse_b3(value: Any) -> SpanContext | None:
    """A remote context from a single ``b3`` header: ``{trace id: 16 or 32 hex}-{span id: 16 hex}``,
    then optionally ``-{0|1|d}`` and ``-{parent span id: 16 hex}``. A lone sampling decision
    (``0``, ``1``, ``d``) is valid and carries no context. Anything else malformed is counted.
    Absent sampling means sampled, as OpenTelemetry's B3 propagator reads it."""
    raw = _ascii(B3_SINGLE, value, MAX_B3)
    if raw is None or raw in (b"0", b"1", b"d"):
        return None
    parts = raw.split(b"-")
    if not 2 <= len(parts) <= 4 or not _is_hex(parts[0], (16, 32)) or not _is_hex(parts[1], (16,)):
        refuse(B3_SINGLE, raw, "shape")
        return None
    if len(parts) > 2 and parts[2] not in (b"0", b"1", b"d"):
        refuse(B3_SINGLE, raw, "sampling")
        return None
    if len(parts) == 4 and not _is_hex(parts[3], (16,)):
        refuse(B3_SINGLE, raw, "parent span id")
        return None
    trace_id, span_id = int(parts[0], 16), int(parts[1], 16)
    if not trace_id or not span_id:
        refuse(B3_SINGLE, raw, "zero id")
        return None
    return _remote(trace_id, span_id, len(parts) == 2 or parts[2] != b"0")


def parse_b3_multi(  # noqa: PLR0911 - a return per way to be malformed
    trace_id: Any, span_id: Any, sampled: Any = None, flags: Any = None
) -> SpanContext | None:
    """A remote context from B3's multi-header values (``x-b3-traceid``: 16 or 32 hex,
    ``x-b3-spanid``: 16 hex, ``x-b3-sampled``: ``1``/``0``/``true``/``false``/``d``,
    ``x-b3-flags``: ``1`` for debug, which samples), or None. Malformed values are counted."""
    if trace_id is None and span_id is None:  # a sampling decision alone, or no B3 at all
        return None
    if trace_id is None or span_id is None:
        refuse(B3_TRACE_ID[0] if trace_id is None else B3_SPAN_ID[0], None, "missing")
        return None
    raw_trace = _ascii(B3_TRACE_ID[0], trace_id, 32)
    if raw_trace is None:
        return None
    raw_span = _ascii(B3_SPAN_ID[0], span_id, 16)
    if raw_span is None:
        return None
    if not _is_hex(raw_trace, (16, 32)) or not _is_hex(raw_span, (16,)):
        refuse(B3_TRACE_ID[0], raw_trace, "shape")
        return None
    is_sampled = False
    if sampled is not None:
        raw = _ascii(B3_SAMPLED[0], sampled, 5)
        if raw is None or raw not in _B3_SAMPLED_VALUES:
            if raw is not None:
                refuse(B3_SAMPLED[0], raw, "sampling")
            return None
        is_sampled = _B3_SAMPLED_VALUES[raw]
    if flags is not None:
        raw = _ascii(B3_FLAGS[0], flags, 1)
        if raw is None or raw not in (b"0", b"1"):
            if raw is not None:
                refuse(B3_FLAGS[0], raw, "flags")
            return None
        is_sampled = is_sampled or raw == b"1"
    t, s = int(raw_trace, 16), int(raw_span, 16)
    if not t or not s:
        refuse(B3_TRACE_ID[0], raw_trace, "zero id")
        return None
    return _remote(t, s, is_sampled)


def parse_uber_trace_id(value: Any) -> SpanContext | None:
    """A remote context from Jaeger's ``uber-trace-id``: ``{trace id}:{span id}:{parent span
    id}:{flags}`` in hex (trace id up to 32 digits, span ids up to 16, flags up to 2; leading zeros
    may be dropped; ``%3A`` may stand for each colon). Sampled when flags bit 1 is set."""
    raw = _ascii(UBER_TRACE_ID, value, MAX_UBER_TRACE_ID)
    if raw is None:
        return None
    if b"%" in raw:
        raw = raw.replace(b"%3A", b":").replace(b"%3a", b":")
    parts = raw.split(b":")
    if (
        len(parts) != 4
        or not _is_hex(parts[0], range(1, 33))
        or not _is_hex(parts[1], range(1, 17))
        or not _is_hex(parts[2], range(1, 17))
        or not _is_hex(parts[3], range(1, 3))
    ):
        refuse(UBER_TRACE_ID, raw, "shape")
        return None
    trace_id, span_id = int(parts[0], 16), int(parts[1], 16)
    if not trace_id or not span_id:
        refuse(UBER_TRACE_ID, raw, "zero id")
        return None
    return _remote(trace_id, span_id, bool(int(parts[3], 16) & 1))


def _unquote(header: str, raw: str, plus: bool = False) -> str | None:
    """Percent-decoded ``raw`` (``+`` as a space too, with ``plus``: OpenTelemetry writes W3C
    baggage with ``quote_plus``), or None (counted) when the bytes are not UTF-8."""
    try:
        return (urllib.parse.unquote_plus if plus else urllib.parse.unquote)(raw, errors="strict")
    except UnicodeDecodeError:
        refuse(header, None, "percent-encoding")
        return None


def parse_baggage(value: Any) -> dict[str, str] | None:
    """W3C baggage (``key=value[;properties],...``, at most 180 members and 8 192 bytes) as a dict
    of percent-decoded values (properties are dropped), or None (counted) if malformed in any way."""
    raw = _ascii(W3C_BAGGAGE, value, MAX_VALUE)
    if raw is None:
        return None
    entries: dict[str, str] = {}
    members = raw.decode("ascii").split(",")
    if len(members) > MAX_BAGGAGE_MEMBERS:
        refuse(W3C_BAGGAGE, raw, "too many members")
        return None
    for member in members:
        pair = member.split(";", 1)[0]
        key, eq, val = pair.partition("=")
        key, val = key.strip(" \t"), val.strip(" \t")
        if not eq or len(member) > MAX_BAGGAGE_ENTRY or not _TOKEN.fullmatch(key) or not _BAGGAGE_VALUE.fullmatch(val):
            refuse(W3C_BAGGAGE, raw, "member format")
            return None
        decoded = _unquote(W3C_BAGGAGE, val, plus=True)
        if decoded is None:
            return None
        entries[key] = decoded
    return entries


def parse_uberctx(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Jaeger baggage from ``uberctx-{key}`` headers, given as (key, value) pairs with the prefix
    removed: at most 180 entries, each at most 4 096 bytes, 8 192 in all (as Jaeger and
    OpenTelemetry's Jaeger propagator bound them); keys must be tokens. Refused entries are counted."""
    out: dict[str, str] = {}
    total = 0
    for key, value in pairs:
        if len(out) == MAX_BAGGAGE_MEMBERS:
            refuse(UBERCTX, None, "too many entries")
            break
        raw = _ascii(UBERCTX, value, MAX_BAGGAGE_ENTRY)
        if raw is None:
            continue
        if not _TOKEN.fullmatch(key) or len(key) + len(raw) + 1 > MAX_BAGGAGE_ENTRY:
            refuse(UBERCTX, raw, "entry format")
            continue
        total += len(key) + len(raw) + 1
        if total > MAX_VALUE:
            refuse(UBERCTX, raw, "too long in all")
            break
        decoded = _unquote(UBERCTX, raw.decode("ascii"))
        if decoded is not None:
            out.setdefault(key, decoded.strip())
    return out


# -- choosing and writing ------------------------------------------------------------------------


class _HeaderSetter:
    """Writes a propagator's fields as Kafka headers: (str key, UTF-8 bytes value)."""

    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier.append((str(key), str(value).encode("utf-8")))


_SETTER = _HeaderSetter()


class _Getter:
    """Reads picked headers (str keys, bytes values within :data:`MAX_VALUE`) for an unknown propagator."""

    def get(self, carrier: Mapping[str, bytes], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [bytes(value).decode("latin-1")]

    def keys(self, carrier: Mapping[str, bytes]) -> list[str]:
        return list(carrier)


_GETTER = _Getter()


def _name(propagator: Any) -> str:
    cls = type(propagator)
    return f"{cls.__module__}.{cls.__qualname__}"


def _flatten(propagator: Any, out: list[tuple[str, Any]]) -> None:
    name = _name(propagator)
    if name == _COMPOSITE and isinstance(getattr(propagator, "_propagators", None), (list, tuple)):
        for inner in propagator._propagators:
            _flatten(inner, out)
        return
    out.append((_KNOWN.get(name, OTHER), propagator))


def _fields(propagator: Any) -> frozenset[str]:
    """What ``propagator`` says it writes (bounded; a propagator whose ``fields`` fails says nothing)."""
    try:
        fields = list(propagator.fields)[:MAX_OTHER_FIELDS]
    except Exception:
        propagator_errors.add()
        return frozenset()
    return frozenset(f for f in fields if isinstance(f, str) and 0 < len(f) <= 128)


class Carriers:
    """The trace-context carriers of one propagator: what a producer writes and a consumer reads
    (see the module docs). Built by :func:`carriers`; immutable but for the one-entry cache of
    the last context written and the bounded table of contexts read."""

    def __init__(self, propagator: Any) -> None:
        self.propagator = propagator
        parts: list[tuple[str, Any]] = []
        _flatten(propagator, parts)
        self.formats: tuple[str, ...] = tuple(name for name, _ in parts)
        """The formats, in the propagator's order: ``tracecontext``, ``baggage``, ``b3``,
        ``b3multi``, ``jaeger``, ``other``."""
        keys: set[str] = set()
        readers: list[Callable[[dict[str, Any]], SpanContext | None]] = []
        for name, part in parts:
            if name == OTHER:
                own = _fields(part)
                keys |= own
                readers.append(_other_reader(part, own))
            else:
                keys |= _CONTEXT_KEYS[name]
                reader = _READERS.get(name)
                if reader is not None and reader not in readers:
                    readers.append(reader)
        self.keys: frozenset[str] = frozenset(keys)
        """The exact header keys holding a span context (what a consumer's batch walk keeps)."""
        self.reads_baggage = BAGGAGE in self.formats
        self.reads_uberctx = JAEGER in self.formats
        self._readers = tuple(readers)
        self._lookup: dict[Any, str] = {**{k: k for k in keys}, **{k.encode(): k for k in keys}}
        self.lookup: frozenset[Any] = frozenset(self._lookup)
        """The carrier keys, as str and as bytes: ``key in lookup`` tells whether a header can hold
        a span context, before anything is read."""
        self._written = frozenset(f.lower() for f in _fields(propagator))
        self._last: tuple[Any, tuple[tuple[str, bytes], ...] | None] = (None, None)
        self._parsed: dict[tuple[tuple[str, Any], ...], tuple[SpanContext | None, bool]] = {}
        """(context, whether it was refused) read, by the carrier values that gave them (batches
        repeat contexts): at most :data:`MAX_CACHED` entries, each at most
        :data:`MAX_CACHED_BYTES` of values. The only table of contexts read."""

    def __repr__(self) -> str:
        return f"Carriers({', '.join(self.formats) or 'none'})"

    # -- writing ------------------------------------------------------------------------------

    def set_by_application(self, headers: Any) -> bool:
        """Whether ``headers`` (a record being sent) already hold a field the propagator writes,
        however spelled (one pass over them): the application's own context is then left alone."""
        written = self._written
        if not written:
            return False
        try:
            for item in headers:
                if len(item) == 2 and isinstance(item[0], (str, bytes)):
                    name = item[0].decode("utf-8", "replace") if isinstance(item[0], bytes) else item[0]
                    if name.lower() in written:
                        return True
        except Exception:  # the client will refuse such headers itself
            return False
        return False

    def inject(self, ctx: Any = None) -> tuple[tuple[str, bytes], ...] | None:
        """The headers carrying ``ctx`` (default: the application's current context) in every
        format of the propagator, or None when its span is not valid and sampled. Kept for the
        last context object asked for: a batch from the same context costs a comparison."""
        if ctx is None:
            ctx = current_context()
        last = self._last
        if last[0] is ctx:
            return last[1]
        out = self._encode(ctx)
        self._last = (ctx, out)
        return out

    def _encode(self, ctx: Any) -> tuple[tuple[str, bytes], ...] | None:
        span = trace.get_current_span(ctx).get_span_context()
        if not span.is_valid or not span.trace_flags.sampled:
            return None
        carrier: list[tuple[str, bytes]] = []
        try:
            self.propagator.inject(carrier, context=ctx, setter=_SETTER)
        except Exception:  # the application's propagator: counted, the record goes out without it
            propagator_errors.add()
            return None
        return tuple(carrier) or None

    # -- reading ------------------------------------------------------------------------------

    def pick(self, headers: Any, wanted: Mapping[Any, str] | None = None) -> dict[str, Any]:
        """The values of the carrier keys among the first :data:`MAX_HEADERS_SCANNED` ``headers``,
        keys matched exactly, the first of each key winning. A value over :data:`MAX_VALUE` is
        counted and its key taken as absent (never copied). Never raises."""
        lookup = self._lookup if wanted is None else wanted
        picked: dict[str, Any] = {}
        if not headers or not lookup:
            return picked
        try:
            for key, value in _scanned(headers):
                name = lookup.get(key) if isinstance(key, (str, bytes)) else None
                if name is None or name in picked:
                    continue
                too_long = isinstance(value, (bytes, bytearray, memoryview, str)) and len(value) > MAX_VALUE
                if too_long:
                    refuse(name, value, "too long")
                picked[name] = None if too_long else value
        except Exception:
            return {}
        return picked

    def extract(self, headers: Any) -> SpanContext | None:
        """The remote span context ``headers`` carry in any of the propagator's formats (a later
        format's valid context wins, as in OpenTelemetry's composite propagator), or None."""
        picked = self.pick(headers)
        if not picked:
            return None
        key = _cache_key(picked)
        if key is not None:
            cached = self._parsed.get(key)
            if cached is not None:
                if cached[1]:  # refused before: counted again, not logged again
                    decode_errors.add()
                return cached[0]
        refused_before = decode_errors.value
        found = None
        for read in self._readers:
            ctx = read(picked)
            if ctx is not None:
                found = ctx
        if key is not None:
            if len(self._parsed) >= MAX_CACHED:
                self._parsed.clear()
            # A value that carries no context without being wrong (B3's lone "1") is not refused.
            self._parsed[key] = (found, found is None and decode_errors.value > refused_before)
        return found

    def baggage(self, headers: Any) -> dict[str, str]:
        """The baggage ``headers`` carry in the propagator's baggage formats (W3C ``baggage``,
        Jaeger's ``uberctx-*``), bounded and strictly parsed; a later format wins per key."""
        out: dict[str, str] = {}
        if not headers or not (self.reads_baggage or self.reads_uberctx):
            return out
        if self.reads_baggage:
            value = self.pick(headers, _BAGGAGE_LOOKUP).get(W3C_BAGGAGE)
            if value is not None:
                out.update(parse_baggage(value) or {})
        if self.reads_uberctx:
            out.update(parse_uberctx(_uberctx_pairs(headers)))
        return out


def _scanned(headers: Iterable[Any]) -> Iterator[tuple[Any, Any]]:
    """(key, value) of the first :data:`MAX_HEADERS_SCANNED` headers that are pairs (the caller
    catches what odd header shapes raise)."""
    for i, item in enumerate(headers):
        if i >= MAX_HEADERS_SCANNED:
            return
        if len(item) == 2:
            yield item[0], item[1]


def _cache_key(picked: dict[str, Any]) -> tuple[tuple[str, Any], ...] | None:
    """The picked values as a cache key, when they are all bytes or str and short enough."""
    total = 0
    for value in picked.values():
        if not isinstance(value, (bytes, str)):
            return None
        total += len(value)
    return tuple(picked.items()) if total <= MAX_CACHED_BYTES else None


_BAGGAGE_LOOKUP = {W3C_BAGGAGE: W3C_BAGGAGE, W3C_BAGGAGE.encode(): W3C_BAGGAGE}
_UBERCTX_BYTES = UBERCTX.encode()


def _uberctx_pairs(headers: Any) -> list[tuple[str, Any]]:
    """(key without the prefix, value) of the ``uberctx-`` headers among the first
    :data:`MAX_HEADERS_SCANNED`; keys that are not ASCII are skipped."""
    pairs: list[tuple[str, Any]] = []
    try:
        for raw, value in _scanned(headers):
            key = raw.decode("ascii", "replace") if isinstance(raw, bytes) and raw.startswith(_UBERCTX_BYTES) else raw
            if isinstance(key, str) and key.startswith(UBERCTX) and len(key) <= 256:
                pairs.append((key[len(UBERCTX) :], value))
    except Exception:
        return []
    return pairs


def _read_w3c(picked: dict[str, Any]) -> SpanContext | None:
    value = picked.get(TRACEPARENT)
    return None if value is None else parse_traceparent(value, picked.get(TRACESTATE))


def _first(picked: dict[str, Any], keys: tuple[str, str]) -> Any:
    value = picked.get(keys[0])
    return picked.get(keys[1]) if value is None else value


def _read_b3(picked: dict[str, Any]) -> SpanContext | None:
    single = picked.get(B3_SINGLE)
    if single is not None:  # as OpenTelemetry's B3 propagators: the single header first
        return parse_b3(single)
    return parse_b3_multi(
        _first(picked, B3_TRACE_ID), _first(picked, B3_SPAN_ID), _first(picked, B3_SAMPLED), _first(picked, B3_FLAGS)
    )


def _read_jaeger(picked: dict[str, Any]) -> SpanContext | None:
    value = picked.get(UBER_TRACE_ID)
    return None if value is None else parse_uber_trace_id(value)


_READERS: dict[str, Callable[[dict[str, Any]], SpanContext | None]] = {
    TRACECONTEXT: _read_w3c,
    B3: _read_b3,
    B3MULTI: _read_b3,
    JAEGER: _read_jaeger,
}


def _other_reader(propagator: Any, fields: frozenset[str]) -> Callable[[dict[str, Any]], SpanContext | None]:
    """Calls an unknown propagator on its own fields' values (bytes or str within :data:`MAX_VALUE`)."""

    def read(picked: dict[str, Any]) -> SpanContext | None:
        carrier = {
            k: v if isinstance(v, bytes) else str(v).encode("latin-1", "replace")
            for k, v in picked.items()
            if k in fields and v is not None
        }
        if not carrier:
            return None
        try:
            ctx = trace.get_current_span(
                propagator.extract(carrier, context=Context(), getter=_GETTER)
            ).get_span_context()
        except Exception:
            propagator_errors.add()
            return None
        return ctx if ctx.is_valid else None

    return read


_resolved: list[tuple[Any, Carriers]] = []
"""The last propagator resolved and its carriers (one entry)."""


def carriers(propagator: Any = None) -> Carriers:
    """The :class:`Carriers` of ``propagator`` (default: OpenTelemetry's global one, as set by
    ``OTEL_PROPAGATORS`` or ``set_global_textmap``), kept for the last propagator asked for."""
    if propagator is None:
        from opentelemetry import propagate

        propagator = propagate.get_global_textmap()
    for known, made in _resolved[-1:]:
        if known is propagator:
            return made
    made = Carriers(propagator)
    _resolved[:] = [(propagator, made)]
    return made


def context_from_headers(headers: Iterable[tuple[Any, Any]] | None) -> SpanContext | None:
    """The creation context consumed record headers carry, in any format of the global
    propagator (W3C ``traceparent``/``tracestate`` by default), or None. Never raises."""
    return carriers().extract(headers)


def record_context(record: Any) -> SpanContext | None:
    """The creation context of a consumed record (any client's ``ConsumerRecord``), or None.

    A context on the record itself (its own headers, in any format of the global propagator)
    wins; otherwise the context of the producer batch it came from, as read by a consumer with
    ``tracing="hooks"`` in this process.
    """
    headers = getattr(record, "headers", None)
    try:
        carried = bool(headers)  # most records of a batch carry none: nothing to read
    except Exception:
        carried = True  # an odd shape: the reader judges it (and never raises)
    if carried:
        own = context_from_headers(headers)
        if own is not None:
            return own
    try:
        return batch_contexts.lookup(record.topic, record.partition, record.offset)
    except Exception:
        return None


def record_baggage(record: Any) -> dict[str, str]:
    """The baggage a consumed record's own headers carry, in the global propagator's baggage
    formats (W3C ``baggage``, Jaeger ``uberctx-*``); empty when none. Producers writing per batch
    put it on each batch's first record. Never raises."""
    try:
        return carriers().baggage(getattr(record, "headers", None))
    except Exception:
        return {}
