"""kafka-python 3.0.x adapter: the only module that touches kafka-python's internals.

Per client, never global: the wrapped producer or consumer passes ``kafka_client=`` (a public
parameter) a factory that builds ``KafkaNetClient`` with :class:`HookedConnectionManager`. That
manager hooks each new ``KafkaConnection`` (built inline in ``get_connection``, before it dials),
and the connection hooks its transport and protocol parser when the transport is made: all through
instance attributes, no class patched and no object's class reassigned (see below). Unwrapped
clients in the same process are untouched.

Where the timings come from (all on the client's network thread):

- created: ``KafkaConnection.send_request`` (stashed while the connection is still initialising,
  so ``write_wait`` includes connection set-up) or ``_send_request``.
- encoded: ``KafkaProtocol.send_request`` gives the frame size; frames are queued in order.
- write start / end: around ``transport._sock_send``, the ``sock.send`` loop. Several frames may
  share one call; they are matched by cumulative byte offsets. ``time_to_write`` is the syscall
  loop, which on a busy process includes waiting for the GIL.
- read: ``KafkaConnection.data_received`` sees raw socket bytes; frame boundaries are found from
  the size prefixes, so a response is "read" when its last byte arrived.
- decoded: ``KafkaConnection._maybe_throttle`` runs once per decoded response, in order, before the
  response reaches the client: batch hooks, throttle and end-to-end fire there.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any

import kafka
from kafka import codec as _codec
from kafka.net.compat import KafkaNetClient
from kafka.net.connection import KafkaConnection
from kafka.net.manager import KafkaConnectionManager
from kafka.net.selector import NetworkSelector
from kafka.protocol.parser import KafkaProtocol
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkahooks import _clock
from kafkahooks._identity import MAX_CLUSTER_ID, ClientIdentity
from kafkahooks._log import get_logger
from kafkahooks._wire._guard import internal_error
from kafkahooks._wire._rejected import INJECTED_ATTR, HeaderGate, refuses_headers, without_injected
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker
from kafkahooks.hooks._types import ApiKey, BrokerMeta

if TYPE_CHECKING:
    from kafkahooks._instrument import Instrumentation

VERIFIED_VERSIONS = ">=3.0,<3.1"
_logger = get_logger(__name__)
_RECORD_CODEC = (DefaultRecordBatch, DefaultRecordBatchBuilder)
"""The client's own v2 batch reader and builder (to resend a refused batch without our headers)."""
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_OFFSET_COMMIT = int(ApiKey.OFFSET_COMMIT)

_DECODERS: dict[int, Callable[[bytes], bytes]] = {
    1: _codec.gzip_decode,
    2: _codec.snappy_decode,
    3: _codec.lz4_decode,
    4: _codec.zstd_decode,
}


def _decompress(codec: int, payload: bytes) -> bytes:
    return _DECODERS[codec](payload)


def check_internals() -> list[str]:
    """Names this adapter relies on that the installed kafka-python no longer has (empty = fine)."""
    from kafka.net import transport

    needed: dict[type, tuple[str, ...]] = {
        KafkaConnection: (
            "send_request",
            "_send_request",
            "connection_made",
            "connection_lost",
            "data_received",
            "_maybe_throttle",
            "_init_complete",
            "closed",
        ),
        KafkaConnectionManager: ("get_connection",),
        KafkaProtocol: ("send_request",),
        transport.KafkaTCPTransport: ("_sock_send",),
        transport.KafkaSSLTransport: ("_sock_send",),
    }
    missing = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls, names in needed.items()
        for name in names
        if not hasattr(cls, name)
    ]
    import inspect

    from kafka.producer.future import FutureRecordMetadata
    from kafka.producer.record_accumulator import RecordAccumulator
    from kafka.producer.sender import Sender
    from kafka.record.memory_records import MemoryRecordsBuilder

    from kafkahooks._symbols import lacks

    # Resending a batch the broker refused for our headers (see _rejected).
    for cls, names in (
        (RecordAccumulator, ("_tp_lock",)),
        (Sender, ("_dispatch_error", "_can_retry")),
        (MemoryRecordsBuilder, ("buffer", "_buffer")),
        (FutureRecordMetadata, ("_produce_future",)),
    ):
        missing += [f"{cls.__module__}.{cls.__qualname__}.{n}" for n in names if not hasattr(cls, n)]
    if lacks(RecordAccumulator, "_batches") or lacks(kafka.KafkaProducer, "_sender"):
        missing.append("kafka.producer RecordAccumulator._batches / KafkaProducer._sender")
    from kafka.consumer.fetcher import Fetcher

    # Hand-outs per record batch: records built through self.PartitionRecords(..., on_drain=...),
    # walked with records.next_batch() and drained once.
    if lacks(Fetcher._parse_fetched_data, "PartitionRecords", "on_drain") or lacks(
        Fetcher.PartitionRecords._unpack_records, "next_batch"
    ):
        missing.append("kafka.consumer.fetcher.Fetcher.PartitionRecords (construction, on_drain, next_batch)")
    if "abort_on_new_batch" not in inspect.signature(RecordAccumulator.append).parameters:
        missing.append("kafka.producer.record_accumulator.RecordAccumulator.append(abort_on_new_batch=)")
    missing += lacks(kafka.KafkaProducer, "_accumulator", "_metadata")
    # The connection table a manager keeps, a connection's re-authentication state (no frame is
    # reported while it re-authenticates), the consumer's fetcher and client.
    missing += lacks(KafkaConnectionManager, "_conns")
    missing += lacks(KafkaConnection, "_reauth")
    missing += lacks(kafka.KafkaConsumer, "_fetcher", "_client")
    return missing


# Everything below hooks *instances*, through instance attributes, never by assigning
# ``__class__``: in CPython 3.11 an object whose class was reassigned loses its fast attribute
# access for good (a lookup costs ~2.5x), and kafka-python reads a connection's, a transport's and
# a parser's attributes for every request and every chunk of bytes received.


def _sock_send(self: Any) -> Any:
    """The transport's ``sock.send`` loop, timed: the bytes that left, between when and when."""
    start = _clock.monotonic_ns()
    total, err = type(self)._sock_send(self)
    try:
        self._kh_tap.sent(total, start, _clock.monotonic_ns(), err)
    except Exception as exc:
        internal_error("kafka_python.sock_send", exc)
    return total, err


def _parser_send_request(self: Any, request: Any, correlation_id: Any = None) -> Any:
    """The parser's encode: the frame's size is known the moment the request is encoded."""
    cid = type(self).send_request(self, request, correlation_id=correlation_id)
    try:
        conn = self._kh_conn
        tap = conn._kh_tap
        key = request.API_KEY
        produce = None
        if key == _PRODUCE and tap.want_produce_batches:
            produce = [(t.name, [(p.index, p.records) for p in t.partition_data]) for t in request.topic_data]
        req = tap.new_request(key, conn._kh_created_ns, len(self.bytes_to_send[-1]), request.expect_response(), produce)
        if key == _OFFSET_COMMIT and tap.want_commits:
            req.commits = (
                request.group_id,
                {(t.name, p.partition_index): p.committed_offset for t in request.topics for p in t.partitions},
            )
        tap.enqueue(req)
    except Exception as exc:
        internal_error("kafka_python.encode", exc)
    return cid


def _send_request_outer(self: Any, request: Any, request_timeout_ms: Any = None) -> Any:
    if self.initializing or self._reauth.is_reauthenticating:
        self._kh_stash[id(request)] = _clock.monotonic_ns()
    return KafkaConnection.send_request(self, request, request_timeout_ms=request_timeout_ms)


def _send_request(self: Any, request: Any, future: Any = None, timeout_at: Any = None) -> Any:
    stash = self._kh_stash
    created = stash.pop(id(request), 0) if stash else 0
    self._kh_created_ns = created or _clock.monotonic_ns()
    return KafkaConnection._send_request(self, request, future=future, timeout_at=timeout_at)


def _connection_made(self: Any, transport: Any) -> None:
    try:
        transport._kh_tap = self._kh_tap
        transport._sock_send = MethodType(_sock_send, transport)
    except Exception as exc:
        internal_error("kafka_python.connection_made", exc)
    KafkaConnection.connection_made(self, transport)
    try:
        self.parser._kh_conn = self
        self.parser.send_request = MethodType(_parser_send_request, self.parser)
    except Exception as exc:
        internal_error("kafka_python.connection_made", exc)


def _init_complete(self: Any) -> None:
    was_initializing = self.initializing
    KafkaConnection._init_complete(self)
    if was_initializing and self.connected:
        try:
            self._kh_tap.connect_done(None)
        except Exception as exc:
            internal_error("kafka_python.connected", exc)


def _data_received(self: Any, data: bytes) -> Any:
    if not self.closed:
        try:
            self._kh_tap.received(data, _clock.monotonic_ns())
        except Exception as exc:
            internal_error("kafka_python.data_received", exc)
    return KafkaConnection.data_received(self, data)


def _maybe_throttle(self: Any, response: Any) -> None:
    try:
        tap = self._kh_tap
        req = tap.next_decoded()
        if req is not None:
            if req.key == _PRODUCE and req.batches:
                tap.produce_acked(
                    req,
                    [
                        (t.name, p.index, p.error_code, p.base_offset)
                        for t in response.responses
                        for p in t.partition_responses
                    ],
                )
            elif req.key == _OFFSET_COMMIT and req.commits is not None:
                tap.commit_acked(
                    req, ((t.name, p.partition_index, p.error_code) for t in response.topics for p in t.partitions)
                )
            elif req.key == _FETCH and tap.want_fetch_batches:
                for t in response.responses:
                    for p in t.partitions:
                        tap.fetched(req, t.topic, p.partition_index, p.records, p.high_watermark, p.error_code)
            tap.decoded(req, getattr(response, "throttle_time_ms", 0) or 0)
    except Exception as exc:
        internal_error("kafka_python.decoded", exc)
    KafkaConnection._maybe_throttle(self, response)


def _connection_lost(self: Any, exc: Any) -> None:
    was_initializing = self.initializing
    KafkaConnection.connection_lost(self, exc)
    try:
        tap = self._kh_tap
        if was_initializing and not tap.connected:
            tap.connect_done(exc if exc is not None else ConnectionError("connection closed while connecting"))
        tap.closed(exc)
    except Exception as err:
        internal_error("kafka_python.connection_lost", err)


_CONNECTION_HOOKS: dict[str, Callable[..., Any]] = {
    "send_request": _send_request_outer,
    "_send_request": _send_request,
    "connection_made": _connection_made,
    "_init_complete": _init_complete,
    "data_received": _data_received,
    "_maybe_throttle": _maybe_throttle,
    "connection_lost": _connection_lost,
}


def _attach(conn: Any, tap: ConnectionTap) -> None:
    """Hook one new connection (before it dials): its requests, its bytes, its life."""
    conn._kh_tap = tap
    conn._kh_stash = {}
    conn._kh_created_ns = 0
    for name, fn in _CONNECTION_HOOKS.items():
        setattr(conn, name, MethodType(fn, conn))


# -- manager and client factory -------------------------------------------------------------------


def broker_meta(manager: KafkaConnectionManager, node_id: Any) -> BrokerMeta:
    """Our view of a kafka-python node id: ``bootstrap-N`` is seed N, ``coordinator-7`` is node 7."""
    node = manager.cluster.broker_metadata(node_id)
    host = getattr(node, "host", "") or ""
    port = int(getattr(node, "port", 0) or 0)
    rack = getattr(node, "rack", None)
    if isinstance(node_id, int):
        return BrokerMeta(node_id, host, port, rack)
    prefix, _, number = str(node_id).rpartition("-")
    index = int(number) if number.isdigit() else 0
    if prefix == "bootstrap" or not number.isdigit():
        return BrokerMeta.seed(index, host, port)
    return BrokerMeta(index, host, port, rack)


class HookedConnectionManager(KafkaConnectionManager):  # type: ignore[misc]
    """Gives every connection it creates a tap on this client's dispatcher."""

    def __init__(self, net: Any, dispatch: HookDispatcher, **configs: Any) -> None:
        super().__init__(net, **configs)
        self._kh_dispatch = dispatch

    def get_connection(self, node_id: Any, *args: Any, **kwargs: Any) -> Any:
        before = self._conns.get(node_id)
        conn = super().get_connection(node_id, *args, **kwargs)
        if conn is not before and type(conn) is KafkaConnection and getattr(conn, "_kh_tap", None) is None:
            try:
                _attach(conn, ConnectionTap(self._kh_dispatch, broker_meta(self, node_id), _decompress))
            except Exception as exc:
                internal_error("kafka_python.get_connection", exc)
        return conn


def client_factory(dispatch: HookDispatcher) -> Callable[..., Any]:
    """A ``kafka_client=`` callable that builds a ``KafkaNetClient`` whose connections are hooked."""

    def make_client(**configs: Any) -> Any:
        net = NetworkSelector(**configs)
        manager = HookedConnectionManager(net, dispatch, **configs)
        return KafkaNetClient(net=net, manager=manager, **configs)

    return make_client


def watch_cluster_id(client: Any, identity: ClientIdentity) -> None:
    """Keep ``identity.cluster_id`` at the cluster id of the client's metadata: the one it
    bootstrapped with (kafka-python fetches metadata during construction) and every update."""
    try:
        cluster = getattr(client, "_metadata", None) or getattr(getattr(client, "_client", None), "cluster", None)
        if cluster is None or getattr(cluster, "_kh_watched", False):
            return

        def note(found: Any) -> None:
            if found and isinstance(found, str) and len(found) <= MAX_CLUSTER_ID:
                identity.cluster_id = found

        note(getattr(cluster, "cluster_id", None))
        # Through a weak reference: the cluster holding a function that holds the cluster would be
        # a reference cycle, which kafka-python takes care to avoid.
        ref = weakref.ref(cluster)
        update = type(cluster).update_metadata

        def update_metadata(*args: Any, **kwargs: Any) -> Any:
            target = ref()
            result = update(target, *args, **kwargs)
            try:
                note(getattr(target, "cluster_id", None))
            except Exception as exc:
                internal_error("kafka_python.cluster_id", exc)
            return result

        cluster.update_metadata = update_metadata
        cluster._kh_watched = True
    except Exception as exc:  # never the client's problem
        internal_error("kafka_python.watch_cluster_id", exc)


class HeadersRefused(kafka.errors.RetriableError):  # type: ignore[misc]
    """A batch was refused for the record headers kafkahooks added; it is resent without them."""


def install_batch_headers(producer: Any, dispatch: HookDispatcher) -> None:
    """Let ``dispatch``'s injectors add headers to the first record of each new producer batch
    (and its record injectors to every record, before that).

    kafka-python builds a batch and appends its first record inside one ``RecordAccumulator.append``
    call, so this producer's accumulator gets a per-instance ``append`` that first tries the open
    batch (``abort_on_new_batch=True``, KIP-480's own probe) and only when the record would open a
    new batch asks the injectors, on the caller's thread, and appends with the extra headers.

    A batch that carries such headers is marked; if the broker refuses it for them (see
    :mod:`kafkahooks._wire._rejected`), the sender's error path rebuilds it without them and
    retries it through kafka-python's own retry logic, and this producer injects no more.
    """
    accumulator = producer._accumulator
    if accumulator.config.get("message_version", 2) < 2:
        # Brokers before 0.11 take no record headers: never inject (kafka-python would refuse the send).
        _logger.warning("batch_headers_disabled", reason="broker older than 0.11 (message format < v2)")
        return
    original = accumulator.append
    gate = HeaderGate()
    record_headers = dispatch.has_record_header_injectors
    batch_headers = dispatch.has_batch_header_injectors

    def append(
        tp: Any,
        timestamp_ms: Any,
        key: Any,
        value: Any,
        headers: Any,
        now: Any = None,
        abort_on_new_batch: bool = False,
    ) -> Any:
        if record_headers and gate.open:
            try:
                extra = dispatch.inject_record_headers(tp.topic, tp.partition, headers or ())
                if extra:
                    headers = [*(headers or ()), *extra]
            except Exception as exc:
                internal_error("kafka_python.record_headers", exc)
        if not batch_headers:
            return original(tp, timestamp_ms, key, value, headers, now=now, abort_on_new_batch=abort_on_new_batch)
        result = original(tp, timestamp_ms, key, value, headers, now=now, abort_on_new_batch=True)
        if not result[3] or abort_on_new_batch:
            return result
        extra = None
        if gate.open:
            try:
                extra = dispatch.inject_batch_headers(tp.topic, tp.partition, headers or ())
                if extra:
                    headers = [*(headers or ()), *extra]
            except Exception as exc:
                internal_error("kafka_python.append", exc)
        result = original(tp, timestamp_ms, key, value, headers, now=now, abort_on_new_batch=False)
        if extra:
            _mark_injected(accumulator, tp, result[0], tuple(k for k, _ in extra))
        return result

    accumulator.append = append
    _install_refusal_retry(producer._sender, gate)


def _mark_injected(accumulator: Any, tp: Any, future: Any, keys: tuple[str, ...]) -> None:
    """Label the batch ``future`` belongs to with the header keys kafkahooks appended."""
    try:
        produce_future = future._produce_future
        with accumulator._tp_lock(tp):
            for batch in reversed(accumulator._batches.get(tp, ())):
                if batch.produce_future is produce_future:
                    setattr(batch, INJECTED_ATTR, keys)
                    return
    except Exception as exc:
        internal_error("kafka_python.mark_injected", exc)


def _install_refusal_retry(sender: Any, gate: HeaderGate) -> None:
    original = sender._dispatch_error

    def _dispatch_error(batch: Any, exception: Any, partition_response: Any) -> Any:
        try:
            injected = getattr(batch, INJECTED_ATTR, None)
            if injected and refuses_headers(exception):
                delattr(batch, INJECTED_ATTR)
                gate.refused(exception)
                if sender._can_retry(batch, HeadersRefused):
                    rebuilt = without_injected(batch.records.buffer(), injected, *_RECORD_CODEC)
                    if rebuilt is not None:
                        batch.records._buffer = rebuilt
                        exception = HeadersRefused(f"{type(exception).__name__}: resending without kafkahooks' headers")
        except Exception as exc:
            internal_error("kafka_python.dispatch_error", exc)
        return original(batch, exception, partition_response)

    sender._dispatch_error = _dispatch_error


# -- consumer hand-outs, per record batch ---------------------------------------------------------


class _HandOutRecords:
    """kafka-python's ``MemoryRecords`` as one partition's record iterator walks it: the cursor
    hears when the iterator moves into a data batch (nothing per record)."""

    __slots__ = ("_cursor", "_records")

    def __init__(self, records: Any, cursor: BatchCursor) -> None:
        self._records = records
        self._cursor = cursor

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        batch = self._records.next_batch(*args, **kwargs)
        try:
            cursor = self._cursor
            cursor.finished()
            if batch is not None and batch.magic == 2 and not batch.is_control_batch:
                cursor.entered(batch.base_offset, batch.next_offset, batch.first_timestamp)
        except Exception as exc:
            internal_error("kafka_python.handout", exc)
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)


def observe_handouts(consumer: Any, tracker: HandOutTracker) -> None:
    """Report the records ``consumer`` hands out, per record batch, to ``tracker``.

    The fetcher builds a ``PartitionRecords`` per completed fetch through ``self.PartitionRecords``:
    this fetcher's gets a factory that gives the records a :class:`BatchCursor` and chains
    ``on_drain``, which kafka-python calls once, with the final position, when the records run
    out or are dropped (a seek, a rebalance, ``close()``).
    """
    fetcher = consumer._fetcher
    build = type(fetcher).PartitionRecords

    def partition_records(fetch_offset: Any, tp: Any, records: Any, **kwargs: Any) -> Any:
        try:
            cursor = tracker.cursor(tp.topic, tp.partition, fetch_offset)
            on_drain = kwargs.get("on_drain")

            def drained(part: Any) -> None:
                try:
                    cursor.abandoned(part.next_fetch_offset)
                except Exception as exc:
                    internal_error("kafka_python.handout", exc)
                if on_drain is not None:
                    on_drain(part)

            kwargs["on_drain"] = drained
            records = _HandOutRecords(records, cursor)
        except Exception as exc:
            internal_error("kafka_python.handout", exc)
        return build(fetch_offset, tp, records, **kwargs)

    fetcher.PartitionRecords = partition_records


def release_handouts(consumer: Any) -> None:
    """The consumer closed: drain the records it still held, so their cursors count what was
    handed out of batches left half-way (kafka-python's own close leaves them)."""
    try:
        consumer._fetcher.close()
    except Exception as exc:
        internal_error("kafka_python.release_handouts", exc)


class KafkaPythonAdapter:
    """:class:`~kafkahooks._wire._adapter.WireAdapter` for kafka-python."""

    library = "kafka-python"
    tracing_modes = frozenset({"off", "hooks", "records"})

    def prepare(self, inst: Instrumentation, configs: dict[str, Any]) -> None:
        """kafka-python builds its network client from ``kafka_client``: give it one whose
        connections report to the dispatcher (unless the application brought its own)."""
        if not inst.installed:
            return
        if configs.get("kafka_client") not in (None, KafkaNetClient):
            _logger.warning("broker_hooks_unavailable", reason="a custom kafka_client was given", role=inst.role)
            return
        configs["kafka_client"] = client_factory(inst.dispatch)

    def install(self, client: Any, inst: Instrumentation) -> str | None:
        dispatch = inst.dispatch
        if inst.role == "producer" and (dispatch.has_batch_header_injectors or dispatch.has_record_header_injectors):
            install_batch_headers(client, dispatch)
        watch_cluster_id(client, inst.identity)
        found = client.config.get("client_id")
        return str(found) if found else None

    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        observe_handouts(consumer, tracker)

    def consumer_closed(self, consumer: Any) -> None:
        release_handouts(consumer)

    def check_internals(self) -> list[str]:
        return check_internals()


ADAPTER = KafkaPythonAdapter()
