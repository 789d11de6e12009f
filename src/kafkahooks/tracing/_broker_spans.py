"""``tracing="hooks"``: one back-dated span per Produce request written and per Fetch response read.

The plugin is a hook of ``on_requests_finished`` (:mod:`kafkahooks.hooks._requests`): the I/O path does
nothing for it beyond what the connection's tap records anyway, and the export worker turns each
finished request into an SDK span, with explicit start and end times, so the sampler, attribute
copies and span processors never run on the client's thread or event loop.

- ``send {topic}`` (kind CLIENT): the write. end = write end, start = end - time_to_write.
- ``poll {topic}`` (kind CLIENT): the read. end = read end, start = end - time_to_read. Empty long
  polls, and polls cut short by the client closing its connection, make no span.

The tap's times are monotonic; the worker maps them to the wall clock with one reading of both
clocks per pass. Several topics in one request: the name and ``messaging.destination.name`` drop
the topic, and ``kafkahooks.partitions`` / ``kafkahooks.partition_records`` list
``topic/partition`` and its record count (at most 64 entries; the rest are counted in
``kafkahooks.partitions_dropped``). Links: the send span links to the creation contexts its
batches carry (their first record's ``traceparent``: noted as each batch opened, whether written
here or by the application, and found again by the batch's first timestamp, so nothing is read
back from the request's bytes; see :mod:`kafkahooks.hooks._opened`), the poll span to the distinct ones among the
batches it read, at most 128, with ``kafkahooks.links_dropped`` counting the rest. On the consumer,
each batch's context is also remembered as its records are handed out, for
:func:`~kafkahooks.tracing.record_context`.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Sequence
from itertools import groupby
from operator import itemgetter
from typing import Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import messaging_attributes as msg
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.trace import Link, SpanContext

from kafkahooks import _clock
from kafkahooks._identity import ClientIdentity
from kafkahooks._otel import span_writer
from kafkahooks.hooks import TRACING_KEYS, ApiKey, BrokerMeta, ConnectionClosed
from kafkahooks.hooks._opened import OpenedBatches
from kafkahooks.hooks._records import (
    BASE_OFFSET,
    FIRST_TIMESTAMP,
    LAST_OFFSET,
    NUM_RECORDS,
    RAW_HEADERS,
    BatchInfo,
    RawBatch,
    Request,
    raw_batch,
    raw_headers,
)
from kafkahooks.hooks._requests import RequestNeeds
from kafkahooks.tracing._carriers import Carriers, carriers
from kafkahooks.tracing._context import batch_contexts

MAX_LINKS = 128
"""The SDK keeps 128 links per span by default; more are dropped here, and counted."""
MAX_PARTITION_ENTRIES = 64
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_NOT_BEFORE_NS = time.time_ns()
"""No span starts before kafkahooks was loaded, whatever a clock step or bad timing says."""


class BrokerSpans:
    """Hooks that synthesize one span per Produce write and per Fetch read (see the module docs)."""

    kafkahooks_kind = "spans:hooks"
    """Passed in ``hooks=``, an instance replaces the plugin of this kind a tracing mode installs."""
    kafkahooks_inline = True
    """Only reads what the taps recorded, on the export worker: never timed or offloaded."""
    kafkahooks_batch_timestamp = True
    """Its ``inject_batch_headers`` takes the batch's first timestamp, to find the batch again."""
    kafkahooks_raw_batches = True
    """Its ``on_fetch_batch_entered`` reads the batch by position: it gets a plain tuple, no
    :class:`~kafkahooks.hooks.BatchInfo` is built for it (see :data:`~kafkahooks.hooks._records.RawBatch`)."""

    def __init__(
        self,
        role: str,
        *,
        tracer_provider: Any = None,
        identity: ClientIdentity | None = None,
        capacity: int = 2_048,
        max_bytes: int | None = None,
        propagator: Any = None,
    ) -> None:
        self.role = role
        self.carriers: Carriers = carriers(propagator)
        """The trace-context formats written on produced batches and read from consumed ones:
        ``propagator``'s, or OpenTelemetry's global propagator's when this plugin is made (set
        ``OTEL_PROPAGATORS`` or call ``set_global_textmap`` before creating clients)."""
        self.identity = identity or ClientIdentity()
        self.capacity = capacity
        """Requests waiting for the export worker before new ones are dropped (the client's log
        takes the smallest capacity its plugins ask for)."""
        self.max_bytes = max_bytes
        """Estimated bytes the client's log may hold (None: :data:`~kafkahooks.hooks._requests.MAX_BYTES`,
        8 MiB; the log takes the smallest its plugins ask for)."""
        self._writer = span_writer(tracer_provider or trace.get_tracer_provider())
        self._base: dict[tuple[int, int], tuple[BrokerMeta, str, dict[str, Any]]] = {}
        self._opened: OpenedBatches[SpanContext] = OpenedBatches()
        """The context each open producer batch carries, until its send span is made."""
        self._last_injected: tuple[Any, SpanContext | None] = (None, None)
        self._cluster_id: str | None = None
        self._logs: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def request_needs(self) -> RequestNeeds:
        return RequestNeeds(
            TRACING_KEYS,
            produce_batches=True,
            fetch_batches=True,
            header_keys=self.carriers.keys,
            produce_header_keys=frozenset(),  # produced batches' contexts are noted as they open
        )

    def attached(self, log: Any) -> None:
        """A client's request log feeds this plugin."""
        self._logs.add(log)

    @property
    def dropped(self) -> int:
        """Requests (hence spans) dropped because a client's log was full."""
        return sum(log.dropped for log in self._logs)

    # -- the application's thread or task ---------------------------------------------------------

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> tuple[tuple[str, bytes], ...] | None:
        """Carry the application's current (sampled) context on each new batch's first record, in
        every format of the propagator, unless the application wrote its own; note the context the
        batch carries for its send span's link."""
        carriers = self.carriers
        if headers and carriers.set_by_application(headers):
            if timestamp_ms >= 0:
                ctx = carriers.extract(headers)  # read here once, not from the request's bytes
                if ctx is not None:
                    self._opened.add(topic, partition, timestamp_ms, ctx)
            return None
        out = carriers.inject()
        if out and timestamp_ms >= 0:
            last = self._last_injected
            if last[0] is not out:  # a new context: what a consumer will read from these headers
                last = self._last_injected = (out, carriers.extract(out))
            if last[1] is not None:
                self._opened.add(topic, partition, timestamp_ms, last[1])
        return out

    def on_fetch_batch_entered(self, topic: str, partition: int, info: RawBatch | BatchInfo, scoped: bool) -> None:
        """Remember the batch's carrier headers for ``record_context`` as its records go out (read
        when a record is looked up, not here: see :class:`~kafkahooks.tracing._context.BatchContexts`).
        A one-record batch is not remembered: its record is the first, whose own headers
        ``record_context`` reads before the table."""
        if isinstance(info, BatchInfo):  # called other than by the hand-out tracker
            info = raw_batch(info)
        if (
            info[NUM_RECORDS] > 1
            and len(info) > RAW_HEADERS
            and _carries_context(info[RAW_HEADERS::2], self.carriers.lookup)
        ):
            batch_contexts.add_headers(
                topic, partition, info[BASE_OFFSET], info[LAST_OFFSET], raw_headers(info), self.carriers
            )

    # -- the export worker ------------------------------------------------------------------------

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        offset = _clock.time_ns() - _clock.monotonic_ns()  # the tap's monotonic stamps -> wall clock
        emit = self._emit
        for r in requests:
            key = r.key
            if key == _PRODUCE:
                end = r.write_end_ns + offset
                start = end - r.time_to_write_ns
                batches = r.batches
                produced = [(t, p, info) for (t, p), info in batches.items()] if batches else []
                emit(r, produced, start, end, self._produce_links(r, produced) if self._opened else _NO_LINKS)
            elif key == _FETCH:
                fetched = r.fetched_raw
                if not fetched:
                    err = r.err
                    if err is None or isinstance(err, ConnectionClosed) or r.write_err is not None:
                        # An empty long poll, one cut short by a closing connection, or one never
                        # sent is not worth a span (users asked for no noise spans).
                        continue
                end = r.read_end_ns + offset
                fetched = fetched or []
                emit(r, fetched, end - r.time_to_read_ns, end, _links(_read_contexts(fetched, self.carriers)))

    def _base_of(self, meta: BrokerMeta, key: int) -> tuple[BrokerMeta, str, dict[str, Any]]:
        """(meta, operation, attributes) per broker and key, by the meta object's identity (each
        connection keeps one): hashing the dataclass would cost more than the lookup. Not per
        topic: a producer writing to thousands of topics keeps nothing per topic here."""
        if self.identity.cluster_id is not self._cluster_id:  # learnt after the first spans
            self._cluster_id = self.identity.cluster_id
            self._base.clear()
        found = self._base.get((id(meta), key))
        if found is not None and found[0] is meta:
            return found
        produce = key == _PRODUCE
        operation = "send" if produce else "poll"
        attrs = {
            msg.MESSAGING_SYSTEM: "kafka",
            msg.MESSAGING_OPERATION_NAME: operation,
            msg.MESSAGING_OPERATION_TYPE: "send" if produce else "receive",
            server_attributes.SERVER_ADDRESS: meta.host,
            server_attributes.SERVER_PORT: meta.port,
        }
        if self.identity.client_id:
            attrs[msg.MESSAGING_CLIENT_ID] = self.identity.client_id
        if self._cluster_id:
            attrs[msg.MESSAGING_KAFKA_CLUSTER_ID] = self._cluster_id
        if not produce and self.identity.group_id:
            attrs[msg.MESSAGING_CONSUMER_GROUP_NAME] = self.identity.group_id
        if len(self._base) > 256:  # connections come and go; their metas are not reused
            self._base.clear()
        found = self._base[(id(meta), key)] = (meta, operation, attrs)
        return found

    def _produce_links(self, r: Request, items: Any) -> tuple[list[Link], int]:
        """The contexts noted when the request's batches opened: taken once the broker accepted a
        batch, only looked at otherwise (a batch that failed is sent again, in a later request)."""
        opened = self._opened
        accepted = r.accepted()
        return _links(
            (opened.take if (t, p) in accepted else opened.get)(t, p, info[FIRST_TIMESTAMP]) for t, p, info in items
        )

    def _emit(self, r: Request, items: Any, start: int, end: int, links_found: tuple[list[Link], int]) -> None:
        key = r.key
        if len(items) == 1:
            topic, partition, info = items[0]
            count = info[NUM_RECORDS]
            extra: dict[str, Any] = {msg.MESSAGING_DESTINATION_PARTITION_ID: str(partition)}
        else:
            extra = {}
            counts: dict[str, int] = {}
            topics = set()
            for (t, p), run in groupby(items, _topic_partition):  # batches come partition by partition
                topics.add(t)
                name = f"{t}/{p}"
                counts[name] = counts.get(name, 0) + sum(item[2][NUM_RECORDS] for item in run)
            topic = topics.pop() if len(topics) == 1 else None
            count = sum(counts.values())
            if len(counts) == 1:
                extra[msg.MESSAGING_DESTINATION_PARTITION_ID] = str(items[0][1])
            elif counts:
                entries = sorted(counts.items())
                extra["kafkahooks.partitions"] = tuple(name for name, _ in entries[:MAX_PARTITION_ENTRIES])
                extra["kafkahooks.partition_records"] = tuple(n for _, n in entries[:MAX_PARTITION_ENTRIES])
                if len(entries) > MAX_PARTITION_ENTRIES:
                    extra["kafkahooks.partitions_dropped"] = len(entries) - MAX_PARTITION_ENTRIES
        if count != 1:  # semconv: batch operations only
            extra[msg.MESSAGING_BATCH_MESSAGE_COUNT] = count
        if key == _PRODUCE:
            extra["kafkahooks.write_wait_ns"] = r.write_wait_ns
            extra["kafkahooks.time_to_write_ns"] = r.time_to_write_ns
            extra["kafkahooks.bytes_written"] = r.bytes_written
        else:
            extra["kafkahooks.bytes_read"] = r.bytes_read
        extra["kafkahooks.read_wait_ns"] = r.read_wait_ns
        extra["kafkahooks.time_to_read_ns"] = r.time_to_read_ns
        links, dropped_links = links_found
        if dropped_links:
            extra["kafkahooks.links_dropped"] = dropped_links
        status = None
        error = r.write_err or r.read_err
        if error is not None:
            extra[error_attributes.ERROR_TYPE] = type(error).__qualname__
            status = str(error)[:200]
        _, operation, attrs = self._base_of(r.meta, key)
        if topic is not None:  # the sampler sees the destination, so it goes in at creation
            attrs = {**attrs, msg.MESSAGING_DESTINATION_NAME: topic}
            name = f"{operation} {topic}"
        else:
            name = operation
        self._writer.emit(
            name,
            attrs,
            extra,
            links,
            start if start > _NOT_BEFORE_NS else _NOT_BEFORE_NS,
            end if end > _NOT_BEFORE_NS else _NOT_BEFORE_NS,
            status,
        )


_NO_LINKS: tuple[list[Link], int] = ([], 0)


def _read_contexts(items: Any, carriers: Carriers) -> Any:
    """The creation contexts the fetched batches' first records carry (the walk kept only the
    wanted header keys, exactly), one per batch that has one."""
    keys = carriers.lookup
    last: Any = None
    found: SpanContext | None = None
    for item in items:
        headers = item[2][RAW_HEADERS:]  # laid flat: key, value, key, value, ...
        if not headers:
            continue
        if found is not None and headers == last:  # the batch before carried the same context
            continue
        if not _carries_context(headers[::2], keys):  # a data-stream pathway alone, typically
            continue
        found = carriers.extract(zip(headers[::2], headers[1::2], strict=True))
        last = headers
        yield found


def _carries_context(names: tuple[str, ...], keys: frozenset[Any]) -> bool:
    """Whether the header keys of a batch's first record (a :data:`~kafkahooks.hooks._records.RawBatch`'s,
    which the walk built: no odd shapes to guard against here) hold a carrier key."""
    for key in names:  # noqa: SIM110 - a loop, not any(generator): once per batch on the consumer thread
        if key in keys:
            return True
    return False


_topic_partition = itemgetter(0, 1)


def _links(contexts: Any) -> tuple[list[Link], int]:
    """Links to the distinct contexts among ``contexts`` (Nones skipped), at most :data:`MAX_LINKS`."""
    links: list[Link] = []
    dropped = 0
    seen: set[tuple[int, int]] | None = None
    for ctx in contexts:
        if ctx is None:
            continue
        ids = (ctx.trace_id, ctx.span_id)
        if seen is None:
            seen = set()
        elif ids in seen:
            continue
        seen.add(ids)
        if len(links) < MAX_LINKS:
            links.append(Link(ctx))
        else:
            dropped += 1
    return links, dropped
