"""One protocol per event, after franz-go's ``pkg/kgo/hooks.go``.

A hook is any object that implements at least one of these methods; it may implement any subset.
Pass hooks to a wrapped client with ``hooks=[...]`` (nested lists are flattened).

Contract: hooks are called synchronously, in registration order, on the client's I/O path: the
event-loop task that reads or writes the connection (aiokafka), or the client's network thread
(kafka-python: the producer's sender thread, the consumer's I/O thread or the caller of ``poll``).
One hook object may be called from several threads and tasks at once, so it must be safe for
concurrent use, and it must be fast: a hook that needs time copies what it needs and hands the work
off. An ``Exception`` raised by a hook is caught, counted and logged (rate-limited) and never
reaches the client; cancellation (``BaseException``) passes through.

Units: durations are ``int`` nanoseconds, sizes are ``int`` bytes. ``key`` is the request's Kafka
API key (:class:`~kafkahooks.hooks.ApiKey` names the common ones).

Order, per connection (one thread or task delivers a connection's events, so they never overlap):

- every request: ``on_broker_write``; then, if a response is expected, ``on_broker_read``; then the
  batch hooks (``on_produce_batch_written``, ``on_fetch_batch_read``), ``on_broker_throttle`` and
  ``on_broker_e2e`` once its response is decoded. Requests are written, and responses read, in the
  order they were sent. A failed write or an ``acks=0`` write ends with its ``on_broker_e2e`` right
  after the write.
- aiokafka: a response's read, batch, throttle and end-to-end hooks fire together, in one event-loop
  step, before the next response is read.
- kafka-python: bytes arrive in chunks; every response completed by one chunk fires its
  ``on_broker_read`` first, then each is decoded in order and fires its batch, throttle and
  end-to-end hooks. So two pipelined responses may give read, read, e2e, e2e: keep nothing
  between a read and "its" end-to-end event in a hook's own fields (``BrokerE2E`` carries
  ``write_end_ns`` and ``read_end_ns``).
- ``on_broker_disconnect`` comes after the end-to-end events of every request the connection
  still carried (which end with an error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, TypeAlias, Union, runtime_checkable

from kafkahooks.hooks._types import (
    BrokerE2E,
    BrokerMeta,
    FetchBatchMetrics,
    ProduceBatchMetrics,
    ProduceRecord,
)

if TYPE_CHECKING:
    from kafkahooks._identity import ClientIdentity
    from kafkahooks.hooks._filter import KeyFilter
    from kafkahooks.hooks._records import BatchInfo, ConnectionEvent, HandOut, Request
    from kafkahooks.hooks._requests import RequestNeeds


@runtime_checkable
class NewClientHook(Protocol):
    def on_new_client(self, client: Any) -> None:
        """Called once, at the end of a wrapped client's construction, with the client."""


@runtime_checkable
class ClientClosedHook(Protocol):
    def on_client_closed(self, client: Any) -> None:
        """Called once, after a wrapped client has closed (``close()`` / ``stop()``), with the client."""


@runtime_checkable
class BrokerConnectHook(Protocol):
    def on_broker_connect(self, meta: BrokerMeta, init_ns: int, err: BaseException | None) -> None:
        """Called after every connection attempt to a broker, retries included.

        ``init_ns`` is the time from the start of the dial until the connection was usable: TCP (and
        TLS) set-up, the ApiVersions exchange and SASL authentication. ``err`` is the error that
        failed the attempt, or ``None``.
        """


@runtime_checkable
class BrokerDisconnectHook(Protocol):
    def on_broker_disconnect(self, meta: BrokerMeta) -> None:
        """Called once when an established connection closes, for any reason, after its in-flight
        requests' hooks have fired."""


@runtime_checkable
class BrokerWriteHook(Protocol):
    def on_broker_write(
        self,
        meta: BrokerMeta,
        key: int,
        bytes_written: int,
        write_wait_ns: int,
        time_to_write_ns: int,
        err: BaseException | None,
    ) -> None:
        """Called after every request write to a broker, failed writes included.

        ``bytes_written`` is the whole frame (4-byte size prefix, header and body), partial when the
        write failed. ``write_wait_ns`` runs from the request's creation to the start of its write:
        queueing behind other requests to that broker, connection set-up if there was none, and
        encoding. ``time_to_write_ns`` is the write itself. ``err`` is a transport error, or ``None``.
        """


@runtime_checkable
class BrokerReadHook(Protocol):
    def on_broker_read(
        self,
        meta: BrokerMeta,
        key: int,
        bytes_read: int,
        read_wait_ns: int,
        time_to_read_ns: int,
        err: BaseException | None,
    ) -> None:
        """Called after every response read from a broker, before it is decoded; failed reads included.

        ``key`` is the key of the request the response answers. ``bytes_read`` is the size prefix
        plus the body (partial on error). ``read_wait_ns`` is the time the response waited behind
        earlier responses on the same connection (read start = the later of this request's write end
        and the previous response's read end). ``time_to_read_ns`` runs from the read start until the
        response was fully read, so it includes the broker's processing and the round trip: for Fetch
        it is mostly the long-poll wait. ``err`` is a transport error, or ``None``.
        """


@runtime_checkable
class BrokerE2EHook(Protocol):
    def on_broker_e2e(self, meta: BrokerMeta, key: int, e2e: BrokerE2E) -> None:
        """Called once per request when its life on the connection is over: after the response was
        read; after a failed write; after a write that expects no response (Produce with
        ``acks=0``); or when the connection died with the request in flight."""


@runtime_checkable
class BrokerThrottleHook(Protocol):
    def on_broker_throttle(self, meta: BrokerMeta, interval_ns: int, throttled_after_response: bool) -> None:
        """Called when a decoded response carries a throttle time greater than zero.

        ``interval_ns`` is the throttle the broker asked for. ``throttled_after_response`` says
        the client must hold back its next request to that broker (KIP-219) rather than the broker
        having delayed the response already: true from the response versions that KIP-219 changed
        (Produce v6, Fetch v8, Metadata v6 and so on; franz-go's ``kmsg`` table), false before.
        """


@runtime_checkable
class ProduceBatchWrittenHook(Protocol):
    def on_produce_batch_written(
        self, meta: BrokerMeta, topic: str, partition: int, metrics: ProduceBatchMetrics
    ) -> None:
        """Called once per partition batch that the broker acknowledged without error (with
        ``acks=0``, once the request was written)."""


@runtime_checkable
class FetchBatchReadHook(Protocol):
    def on_fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, metrics: FetchBatchMetrics) -> None:
        """Called once per record batch in a Fetch response (control batches excluded), in order,
        when the response is read."""


@runtime_checkable
class ProduceRecordBufferedHook(Protocol):
    def on_produce_record_buffered(self, record: ProduceRecord) -> None:
        """Called on the caller's thread or task when ``send()`` accepts a record, before it is
        appended to a batch. The hook may change ``record.headers``; the change is sent."""


@runtime_checkable
class ProduceRecordUnbufferedHook(Protocol):
    def on_produce_record_unbuffered(self, record: ProduceRecord, err: BaseException | None) -> None:
        """Called once per buffered record when its delivery ends: acknowledged (``err`` is
        ``None`` and ``record.offset`` is set) or failed."""


@runtime_checkable
class FetchRecordBufferedHook(Protocol):
    def on_fetch_record_buffered(self, record: Any) -> None:
        """Called for each consumed record as the client hands it out of its buffer.

        Both Python clients decode fetched batches lazily, at the moment they are handed to the
        application, so this fires just before :meth:`on_fetch_record_unbuffered`. ``record`` is the
        client's own record object (``ConsumerRecord``).
        """


@runtime_checkable
class FetchRecordUnbufferedHook(Protocol):
    def on_fetch_record_unbuffered(self, record: Any, polled: bool) -> None:
        """Called for each consumed record as it leaves the client: ``polled`` is true when the
        application received it (``poll``, ``getmany``, iteration)."""


@runtime_checkable
class ProduceBatchHeadersHook(Protocol):
    def inject_batch_headers(
        self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]]
    ) -> Sequence[tuple[str, bytes]] | None:
        """A kafkahooks extension (kgo has none): called on the caller's thread or task when a record
        is about to open a new producer batch, so the batch's first record can carry propagation
        headers (trace context, data-stream pathway) for the whole batch.

        ``headers`` are the record's own headers, to check before adding (a context the
        application set itself must be left alone). Return the headers to add, or ``None``. Not
        called for batches built by hand (aiokafka's ``create_batch``/``send_batch``).
        """


@runtime_checkable
class ProduceRecordHeadersHook(Protocol):
    def inject_record_headers(
        self, topic: str, partition: int, headers: Sequence[tuple[str, bytes]]
    ) -> Sequence[tuple[str, bytes]] | None:
        """A kafkahooks extension (kgo has none): called as each record is appended to a producer
        batch, on the caller's thread or task, for headers that must travel on every record (a
        data-stream pathway for per-record consumers downstream). Same contract as
        :meth:`ProduceBatchHeadersHook.inject_batch_headers`, which still sees a batch's first
        record after this hook added to it. Keep it to a cache lookup: it runs per record.
        """


@runtime_checkable
class RecordsPolledHook(Protocol):
    def on_records_polled(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        """A kafkahooks extension (kgo has none): called on the application's thread or task each
        time a consume API hands records of one partition to the application, once per partition
        list (``poll``, ``getmany``, the lists iteration draws from) or per record (``getone``).

        ``records`` are the client's own record objects, in offset order; read them, never keep or
        change them. This is where per-batch work on consumed records belongs (data-stream
        checkpoints); it costs nothing per record unless the hook loops over them.
        """


@runtime_checkable
class OffsetsCommittedHook(Protocol):
    def on_offsets_committed(self, group: str, topic: str, partition: int, offset: int) -> None:
        """A kafkahooks extension (kgo has none): called once per partition whose offset the broker
        accepted in an OffsetCommit response (auto-commits included), on the client's I/O path.
        ``offset`` is the committed offset: the next record the group will read."""


@runtime_checkable
class RequestsFinishedHook(Protocol):
    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        """Finished requests, in batches, on kafkahooks' export worker thread: never on the client's
        I/O path, so a hook here may take its time (what it holds up is the next pass, and past
        the log's bounds requests are dropped and counted, never the client blocked). Each
        :class:`~kafkahooks.hooks.Request` carries what the taps measured (key, broker, the four
        timings, bytes, errors) and what the hook's ``request_needs``
        (:class:`~kafkahooks.hooks.RequestNeeds`) asked for: the partition batches a Produce
        carried and a Fetch returned, chosen first-record headers, the broker's answers, commits,
        high watermarks. Only requests whose key ``request_needs.request_keys`` allows arrive
        (default: the hook's ``request_keys``, else every key). Read-only: several hooks share
        each record. The cheap path kafkahooks' own spans, metrics, data streams and flight
        recorder take: one record per request, nothing per event on the I/O path."""


@runtime_checkable
class ConnectionEventsHook(Protocol):
    def on_connection_events(self, events: Sequence[ConnectionEvent]) -> None:
        """A kafkahooks extension (kgo has none): connects, disconnects and throttles, in batches,
        on kafkahooks' export worker thread, in the order they happened on each connection. The
        batched twin of ``on_broker_connect``/``on_broker_disconnect``/``on_broker_throttle``
        (:class:`~kafkahooks.hooks.ConnectionEvent` carries the same arguments), for hooks that
        only count: nothing runs for them on the I/O path but one append."""


@runtime_checkable
class FetchBatchEnteredHook(Protocol):
    def on_fetch_batch_entered(self, topic: str, partition: int, info: BatchInfo, scoped: bool) -> Any:
        """A kafkahooks extension (kgo has none): called on the application's thread or task once
        per fetched record batch, just before its first record is handed to the application,
        whatever the consume API (``poll``, ``getmany``, ``getone``, iteration): a cost per
        *batch*, never per record. ``info`` is the batch as the connection's tap read it from the
        Fetch response (counts, sizes, first timestamp, the first record's headers whose keys
        ``request_needs.header_keys`` asked for). A hook object whose ``kafkahooks_raw_batches``
        is true gets it as a plain tuple of the same fields in the same order, the codec as its
        number, to read by position: no :class:`~kafkahooks.hooks.BatchInfo` is built per batch
        when every such hook of a consumer says so (kafkahooks' own do).

        ``scoped`` is true inside a call that hands out lists (``poll``, ``getmany``, and the
        polls kafka-python's iterator draws its records from): the call's batches come together at
        :meth:`PollEndedHook.on_poll_ended` when it returns. The return
        value is a token, given back with the batch's :class:`~kafkahooks.hooks.HandOut`
        (``handout.token(hook)``) once its records are handed out. Never timed or moved off the
        thread (the caller needs the token now): keep it to a few cache lookups, as the built-in
        data streams do to set the current pathway.
        """


@runtime_checkable
class PollEndedHook(Protocol):
    def on_poll_ended(self, tokens: Sequence[Any]) -> None:
        """A kafkahooks extension (kgo has none): a call that hands out lists (``poll``,
        ``getmany``) is returning, on the application's thread or task, after it entered at least
        one batch; ``tokens`` are what this hook's ``on_fetch_batch_entered`` returned for each, in
        order (a failed call's token is None). The built-in data streams set the current pathway
        here (the oldest of the call's, as Datadog merges a fan-in)."""


@runtime_checkable
class BatchesHandedOutHook(Protocol):
    def on_batches_handed_out(self, handouts: Sequence[HandOut]) -> None:
        """A kafkahooks extension (kgo has none): record batches whose records the application
        received, in batches, on kafkahooks' export worker thread. One
        :class:`~kafkahooks.hooks.HandOut` per batch: its records handed out (exact, from offsets:
        fewer when the consumer started or stopped inside it, counted once a seek, rebalance or
        ``stop()`` ends it), when it entered, and each ``on_fetch_batch_entered`` token. What the
        built-in metrics count consumed messages from, and data streams weigh checkpoints by."""


class Event(NamedTuple):
    """One hook event: everything the rest of kafkahooks derives from it."""

    method: str
    """The hook method a hook implements to hear this event."""
    protocol: type
    """Its protocol (one method each)."""
    slot: str
    """The :class:`~kafkahooks.hooks.HookDispatcher` attribute holding the event's callables."""
    keyed: Literal["write", "read", "e2e"] | None = None
    """Dispatched per request key, filtered by a hook's ``request_keys`` (which side of the filter)."""
    answers: bool = False
    """The client waits for the hook's answer (header injection): skipped when slow, never offloaded."""
    on_connections: bool = False
    """Served from the connections: a hook for it makes the client install its taps."""
    batched: bool = False
    """Delivered in batches by the export worker, from the client's request log (never called on
    the I/O path, never timed or offloaded)."""
    handout: bool = False
    """Called by the consumer's hand-out tracker on the application's thread or task, once per
    record batch or consume call (never timed or offloaded: the tracker needs the answer)."""

    @property
    def via_log(self) -> bool:
        """Served by the client's request log and hand-out tracker, not by a dispatcher method: a
        hook implementing it joins the log."""
        return self.batched or self.handout


EVENTS: tuple[Event, ...] = (
    Event("on_new_client", NewClientHook, "_new_client"),
    Event("on_client_closed", ClientClosedHook, "_client_closed"),
    Event("on_broker_connect", BrokerConnectHook, "_connect", on_connections=True),
    Event("on_broker_disconnect", BrokerDisconnectHook, "_disconnect", on_connections=True),
    Event("on_broker_write", BrokerWriteHook, "_write_keyed", keyed="write", on_connections=True),
    Event("on_broker_read", BrokerReadHook, "_read_keyed", keyed="read", on_connections=True),
    Event("on_broker_e2e", BrokerE2EHook, "_e2e_keyed", keyed="e2e", on_connections=True),
    Event("on_broker_throttle", BrokerThrottleHook, "_throttle", on_connections=True),
    Event("on_produce_batch_written", ProduceBatchWrittenHook, "_produce_batch", on_connections=True),
    Event("on_fetch_batch_read", FetchBatchReadHook, "_fetch_batch", on_connections=True),
    Event("on_produce_record_buffered", ProduceRecordBufferedHook, "_produce_buffered"),
    Event("on_produce_record_unbuffered", ProduceRecordUnbufferedHook, "_produce_unbuffered"),
    Event("on_fetch_record_buffered", FetchRecordBufferedHook, "_fetch_buffered"),
    Event("on_fetch_record_unbuffered", FetchRecordUnbufferedHook, "_fetch_unbuffered"),
    Event("inject_batch_headers", ProduceBatchHeadersHook, "_inject", answers=True),
    Event("inject_record_headers", ProduceRecordHeadersHook, "_inject_record", answers=True),
    Event("on_records_polled", RecordsPolledHook, "_polled"),
    Event("on_offsets_committed", OffsetsCommittedHook, "_committed", on_connections=True),
    Event("on_requests_finished", RequestsFinishedHook, "_finished", on_connections=True, batched=True),
    Event("on_connection_events", ConnectionEventsHook, "_connection_events", on_connections=True, batched=True),
    Event("on_fetch_batch_entered", FetchBatchEnteredHook, "_batch_entered", on_connections=True, handout=True),
    Event("on_poll_ended", PollEndedHook, "_poll_ended", on_connections=True, handout=True),
    Event("on_batches_handed_out", BatchesHandedOutHook, "_handed_out", on_connections=True, batched=True),
)
"""Every hook event, in the order the dispatcher documents them: the single source of truth for
the protocol list, the method names, the dispatcher's per-event tuples and what closing drops."""

ALL_HOOK_PROTOCOLS: tuple[type, ...] = tuple(event.protocol for event in EVENTS)
"""Every hook protocol, in the order the dispatcher documents them."""

HOOK_METHODS: tuple[str, ...] = tuple(event.method for event in EVENTS)
"""The method names, one per protocol above."""

Hook: TypeAlias = Union[  # noqa: UP007 - a TypeAlias of protocols reads better spelt out
    NewClientHook,
    ClientClosedHook,
    BrokerConnectHook,
    BrokerDisconnectHook,
    BrokerWriteHook,
    BrokerReadHook,
    BrokerE2EHook,
    BrokerThrottleHook,
    ProduceBatchWrittenHook,
    FetchBatchReadHook,
    ProduceRecordBufferedHook,
    ProduceRecordUnbufferedHook,
    FetchRecordBufferedHook,
    FetchRecordUnbufferedHook,
    ProduceBatchHeadersHook,
    ProduceRecordHeadersHook,
    RecordsPolledHook,
    OffsetsCommittedHook,
    RequestsFinishedHook,
    ConnectionEventsHook,
    FetchBatchEnteredHook,
    PollEndedHook,
    BatchesHandedOutHook,
]
"""Any object implementing at least one hook event (what ``hooks=[...]`` takes)."""


class ConfiguredHook(Protocol):
    """The optional attributes a hook object may set (see the module docs); a hook need not
    implement this protocol: kafkahooks reads each attribute only if present."""

    request_keys: KeyFilter
    kafkahooks_inline: bool
    request_needs: RequestNeeds

    def bind_identity(self, identity: ClientIdentity) -> None: ...
