"""``tracing="hooks"``: one back-dated span per Produce request written and per Fetch response read.

The plugin is an ordinary set of hooks (filtered to :data:`~kafkahooks.TRACING_KEYS`). On the I/O
path it only reads the clock and hands a small tuple to a bounded buffer; the export worker turns
the tuples into SDK spans later, with explicit start and end times, so the sampler, attribute
copies and span processors never run on the client's thread or event loop.

Per request, the hooks arrive in a fixed order on one thread: write ... read, batch hooks, e2e
(``acks=0`` and failed writes: write, batch hooks, e2e). The plugin notes the read time at the
read hook, gathers the batch hooks, and emits at e2e:

- ``send {topic}`` (kind CLIENT): the write. end = write end, start = end - time_to_write. The
  write end is the read time minus read_wait and time_to_read (or the write time itself when no
  response follows).
- ``poll {topic}`` (kind CLIENT): the read. end = read end, start = end - time_to_read.

Several topics in one request: the name and ``messaging.destination.name`` drop the topic, and
``kafkahooks.partitions`` / ``kafkahooks.partition_records`` list ``topic/partition`` and its
record count (at most 64 entries; the rest are counted in ``kafkahooks.partitions_dropped``).
Links: the send span links to the creation contexts its batches carry (their first record's
``traceparent``), the poll span to the distinct ones among the batches it read, at most 128, with
``kafkahooks.links_dropped`` counting the rest.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import Link, SpanContext

from kafkahooks import _clock
from kafkahooks._identity import ClientIdentity
from kafkahooks.export import BoundedBuffer, worker
from kafkahooks.hooks import (
    TRACING_KEYS,
    ApiKey,
    BrokerE2E,
    BrokerMeta,
    ConnectionClosed,
    FetchBatchMetrics,
    ProduceBatchMetrics,
)
from kafkahooks.tracing import _context
from kafkahooks.tracing._context import TRACEPARENT, TRACESTATE
from kafkahooks.tracing._writer import span_writer

MAX_LINKS = 128
"""The SDK keeps 128 links per span by default; more are dropped here, and counted."""
MAX_PARTITION_ENTRIES = 64
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_ROOT = Context()
_NOT_BEFORE_NS = time.time_ns()
"""No span starts before kafkahooks was loaded, whatever a clock step or bad timing says."""

# What one synthesized span needs, queued on the I/O path:
# (key, meta, start_ns, end_ns, e2e, batches tuple[(topic, partition, count, ctx)], error)
_Item = tuple[int, BrokerMeta, int, int, BrokerE2E, tuple[tuple[str, int, int, Any], ...], BaseException | None]


class SpanSink:
    """Turns queued request records into SDK spans, on the export worker."""

    def __init__(self, plugin: BrokerSpans, capacity: int) -> None:
        self.name = f"spans:{plugin.role}"
        self._plugin = plugin
        self.buffer: BoundedBuffer[_Item] = BoundedBuffer(self.name, capacity, worker().wake)

    def process(self) -> None:
        emit = self._plugin._emit
        for item in self.buffer.drain():
            emit(item)

    def forget(self) -> None:
        self.buffer.clear()


class BrokerSpans:
    """Hooks that synthesize one span per Produce write and per Fetch read (see the module docs)."""

    kafkahooks_inline = True
    """Only queues work for the export worker: called directly, never timed or offloaded."""

    request_keys = TRACING_KEYS
    batch_header_keys = frozenset({TRACEPARENT, TRACESTATE})

    def __init__(
        self,
        role: str,
        *,
        tracer_provider: Any = None,
        identity: ClientIdentity | None = None,
        capacity: int = 8192,
    ) -> None:
        self.role = role
        self.identity = identity or ClientIdentity()
        self._writer = span_writer(tracer_provider or trace.get_tracer_provider())
        self._base: dict[tuple[BrokerMeta, int, str | None], dict[str, Any]] = {}
        self._read_wall_ns = 0
        self._batches: list[tuple[str, int, int, Any]] = []
        self.sink = SpanSink(self, capacity)
        worker().register(self.sink)

    @property
    def dropped(self) -> int:
        """Spans dropped because the export buffer was full."""
        return self.sink.buffer.dropped

    # -- hooks: the I/O path ----------------------------------------------------------------------

    def inject_batch_headers(self, topic: str, partition: int, headers: Any) -> list[tuple[str, bytes]] | None:
        """Carry the application's current (sampled) span context on each new batch's first record."""
        if _context.find_header(headers, TRACEPARENT) is not None:
            return None
        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid or not ctx.trace_flags.sampled:
            return None
        out = [(TRACEPARENT, _context.format_traceparent(ctx))]
        if ctx.trace_state:
            out.append((TRACESTATE, ctx.trace_state.to_header().encode("ascii")))
        return out

    def on_broker_read(self, meta: BrokerMeta, key: int, n: int, read_wait_ns: int, ttr_ns: int, err: Any) -> None:
        self._read_wall_ns = _clock.time_ns()

    def on_produce_batch_written(self, meta: BrokerMeta, topic: str, partition: int, m: ProduceBatchMetrics) -> None:
        self._batches.append((topic, partition, m.num_records, m.headers))

    def on_fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, m: FetchBatchMetrics) -> None:
        self._batches.append((topic, partition, m.num_records, m.headers))
        if m.headers:
            ctx = _context.context_from_headers(m.headers)
            if ctx is not None:
                _context.batch_contexts.add(topic, partition, m.base_offset, m.last_offset, ctx)

    def on_broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        if key == _PRODUCE:
            finished = self._read_wall_ns if e2e.bytes_read else _clock.time_ns()
            end = finished - e2e.read_wait_ns - e2e.time_to_read_ns
            start = end - e2e.time_to_write_ns
        elif key == _FETCH:
            if e2e.write_err is not None:
                self._batches = []
                return
            end = self._read_wall_ns if e2e.read_err is None else _clock.time_ns()
            start = end - e2e.time_to_read_ns
        else:
            return
        batches, self._batches = tuple(self._batches), []
        self._read_wall_ns = 0
        if key == _FETCH and not batches and (e2e.err is None or isinstance(e2e.err, ConnectionClosed)):
            # An empty long poll, or one cut short by the client closing its connection, is not
            # worth a span (users asked for no noise spans).
            return
        self.sink.buffer.offer((key, meta, max(start, _NOT_BEFORE_NS), max(end, _NOT_BEFORE_NS), e2e, batches, e2e.err))

    # -- the export worker ------------------------------------------------------------------------

    def _attributes(self, meta: BrokerMeta, key: int, topic: str | None) -> dict[str, Any]:
        cache_key = (meta, key, topic)
        attrs = self._base.get(cache_key)
        if attrs is None:
            produce = key == _PRODUCE
            attrs = {
                msg.MESSAGING_SYSTEM: "kafka",
                msg.MESSAGING_OPERATION_NAME: "send" if produce else "poll",
                msg.MESSAGING_OPERATION_TYPE: "send" if produce else "receive",
                server_attributes.SERVER_ADDRESS: meta.host,
                server_attributes.SERVER_PORT: meta.port,
            }
            if self.identity.client_id:
                attrs[msg.MESSAGING_CLIENT_ID] = self.identity.client_id
            if topic is not None:
                attrs[msg.MESSAGING_DESTINATION_NAME] = topic
            if not produce and self.identity.group_id:
                attrs[msg.MESSAGING_CONSUMER_GROUP_NAME] = self.identity.group_id
            if len(self._base) > 4096:
                self._base.clear()
            self._base[cache_key] = attrs
        return attrs

    def _emit(self, item: _Item) -> None:
        key, meta, start, end, e2e, batches, error = item
        topics = {b[0] for b in batches}
        topic = next(iter(topics)) if len(topics) == 1 else None
        operation = "send" if key == _PRODUCE else "poll"
        links, dropped_links = _links(batches)
        extra: dict[str, Any] = {msg.MESSAGING_BATCH_MESSAGE_COUNT: sum(b[2] for b in batches)}
        partitions = {(b[0], b[1]) for b in batches}
        if len(partitions) == 1:
            extra[msg.MESSAGING_DESTINATION_PARTITION_ID] = str(batches[0][1])
        elif partitions:
            counts: dict[str, int] = {}
            for t, p, n, _ in batches:
                counts[f"{t}/{p}"] = counts.get(f"{t}/{p}", 0) + n
            entries = sorted(counts.items())
            extra["kafkahooks.partitions"] = tuple(name for name, _ in entries[:MAX_PARTITION_ENTRIES])
            extra["kafkahooks.partition_records"] = tuple(n for _, n in entries[:MAX_PARTITION_ENTRIES])
            if len(entries) > MAX_PARTITION_ENTRIES:
                extra["kafkahooks.partitions_dropped"] = len(entries) - MAX_PARTITION_ENTRIES
        if key == _PRODUCE:
            extra["kafkahooks.write_wait_ns"] = e2e.write_wait_ns
            extra["kafkahooks.time_to_write_ns"] = e2e.time_to_write_ns
            extra["kafkahooks.bytes_written"] = e2e.bytes_written
        else:
            extra["kafkahooks.bytes_read"] = e2e.bytes_read
        extra["kafkahooks.read_wait_ns"] = e2e.read_wait_ns
        extra["kafkahooks.time_to_read_ns"] = e2e.time_to_read_ns
        if dropped_links:
            extra["kafkahooks.links_dropped"] = dropped_links
        status = None
        if error is not None:
            extra[error_attributes.ERROR_TYPE] = type(error).__qualname__
            status = str(error)[:200]
        self._writer.emit(
            f"{operation} {topic}" if topic else operation,
            self._attributes(meta, key, topic),
            extra,
            links,
            start,
            end,
            status,
        )


def _links(batches: tuple[tuple[str, int, int, Any], ...]) -> tuple[list[Link], int]:
    seen: set[tuple[int, int]] = set()
    links: list[Link] = []
    dropped = 0
    for _, _, _, headers in batches:
        if not headers:
            continue
        ctx: SpanContext | None = _context.context_from_headers(headers)
        if ctx is None or (ctx.trace_id, ctx.span_id) in seen:
            continue
        seen.add((ctx.trace_id, ctx.span_id))
        if len(links) < MAX_LINKS:
            links.append(Link(ctx))
        else:
            dropped += 1
    return links, dropped
