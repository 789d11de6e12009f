"""aiokafka 0.13-0.14 adapter: the only module that touches aiokafka's internals.

Per client, never global: aiokafka builds its ``AIOKafkaClient`` inline and connections through the
module function ``create_conn``, so patching either would touch every client in the process.
Instead the wrapped producer/consumer gives *its own* client object (before ``start()``) a hooked
``send`` and a connection table that hooks each connection it stores: its ``send``,
``_handle_frame`` and ``close`` (instance attributes), and its ``StreamWriter``'s transport (a
stand-in that times each frame's write). No class is patched, no object's class is reassigned,
and nothing changes the shape of the objects aiokafka touches for every record (see below).

Where the timings come from (all in the event loop):

- created: entry of ``AIOKafkaClient.send`` (carried to the connection in a ``ContextVar``), so
  ``write_wait`` includes waiting for the connection to be ready and encoding.
- write: around the transport's ``write`` of the frame. asyncio's transport tries ``sock.send`` at once
  and buffers what the kernel did not take, so ``time_to_write`` is that attempt; when the
  transport had to buffer (a large request, a full socket), the rest of the write happens later in
  the loop and shows up in ``read_wait``/``time_to_read`` instead.
- read: ``_handle_frame`` runs as soon as ``readexactly(size)`` returned the whole frame: the read
  hook fires there, before decoding; batch, throttle and end-to-end hooks right after decoding.

aiokafka opens its connections with ``create_conn``, which performs the ApiVersions exchange (and
SASL) before the connection is returned, and bootstraps through connections it never keeps: those
requests are not seen by the write/read hooks. A new connection is hooked when the client stores
it in its connection table (a per-client dict subclass, so the lookups every send makes stay plain
dict lookups); ``on_broker_connect`` fires then, with the whole set-up time. A failed attempt is
never stored: it is reported when the request that needed it fails with ``NodeNotReadyError``.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import sys
import weakref
from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any, Literal

import aiokafka
from aiokafka import codec as _codec
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import NodeNotReadyError
from aiokafka.producer.message_accumulator import BatchBuilder, MessageAccumulator, MessageBatch
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkahooks import _clock
from kafkahooks._identity import MAX_CLUSTER_ID, ClientIdentity
from kafkahooks._wire._guard import internal_error
from kafkahooks._wire._rejected import HeaderGate, refuses_headers, without_injected
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker
from kafkahooks.hooks._requests import Request
from kafkahooks.hooks._types import ApiKey, BrokerMeta

if TYPE_CHECKING:
    from kafkahooks._instrument import Instrumentation

_ADD_MESSAGE = MessageAccumulator.add_message.__code__
"""The code of the accumulator's ``add_message``: the one caller of ``_append_batch`` whose new batch
is about to get its first record from ``send()``."""
_RECORD_CODEC = (DefaultRecordBatch, DefaultRecordBatchBuilder)
"""The client's own v2 batch reader and builder (to resend a refused batch without our headers)."""

VERIFIED_VERSIONS = ">=0.13,<0.15"
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_OFFSET_COMMIT = int(ApiKey.OFFSET_COMMIT)

_created_ns: contextvars.ContextVar[int] = contextvars.ContextVar("kafkahooks_request_created_ns", default=0)

_DECODERS: dict[int, Callable[[bytes], bytes]] = {
    1: _codec.gzip_decode,
    2: _codec.snappy_decode,
    3: _codec.lz4_decode,
    4: _codec.zstd_decode,
}


def _decompress(codec: int, payload: bytes) -> bytes:
    return _DECODERS[codec](payload)


def _compiled_first_headers() -> Callable[[Any], Any] | None:
    """aiokafka's compiled batch reader, to read a first record's headers (~1 µs instead of ~5 µs
    in Python), or None when aiokafka runs without its C extensions."""
    if "_crecords" not in DefaultRecordBatch.__module__:
        return None

    def first_headers(batch: Any) -> Any:
        for record in DefaultRecordBatch(batch):
            return record.headers
        return None

    return first_headers


_first_headers = _compiled_first_headers()


def check_internals() -> list[str]:
    """Names this adapter relies on that the installed aiokafka no longer has (empty = fine)."""
    import inspect

    from aiokafka.consumer import fetcher
    from aiokafka.protocol import commit as commit_protocol
    from aiokafka.protocol import produce as produce_protocol

    from kafkahooks._symbols import lacks

    methods: dict[type, tuple[str, ...]] = {
        AIOKafkaClient: ("_get_conn", "send"),
        MessageAccumulator: ("_append_batch", "add_message", "reenqueue"),
        MessageBatch: ("failure", "get_data_buffer"),
        BatchBuilder: ("append", "record_count", "_build"),
        AIOKafkaConnection: ("send", "_handle_frame", "close"),
    }
    attributes: dict[type, tuple[str, ...]] = {
        AIOKafkaClient: ("cluster", "_conns", "_client_id", "_get_conn_lock_value"),
        # The batches a Produce request carries and the offsets a commit carries, read as sent.
        produce_protocol.ProduceRequest: ("_topics",),
        commit_protocol.OffsetCommitRequest: ("_consumer_group", "_topics"),
        AIOKafkaConnection: ("_requests", "_writer", "_reader"),
        BatchBuilder: ("_buffer", "_builder"),
        asyncio.StreamWriter: ("_transport",),
        aiokafka.AIOKafkaProducer: ("_message_accumulator", "client"),
        aiokafka.AIOKafkaConsumer: ("_client", "_fetcher"),
        # Hand-outs per record batch: the fetcher's result table, each result's partition records,
        # and the iterator that reads ``self._records`` (has_next/next_batch) only once iterated.
        fetcher.Fetcher: ("_records",),
        fetcher.FetchResult: ("_partition_records",),
        fetcher.PartitionRecords: ("_records", "next_fetch_offset", "_records_iterator"),
    }
    missing = [
        f"{c.__module__}.{c.__qualname__}.{n}" for c, names in methods.items() for n in names if not hasattr(c, n)
    ]
    if lacks(fetcher.PartitionRecords._unpack_records, "has_next", "next_batch"):
        missing.append("aiokafka.consumer.fetcher.PartitionRecords._unpack_records (has_next/next_batch)")
    from aiokafka.protocol import fetch

    for name in dir(fetch):
        if name.startswith("FetchResponse_v"):
            partition_fields = _partition_fields(getattr(fetch, name))
            if partition_fields[:3] != ("partition", "error_code", "highwater_offset"):
                missing.append(f"aiokafka.protocol.fetch.{name} partitions (partition, error_code, highwater_offset)")
    if lacks(asyncio.StreamWriter.write, "_transport", "write"):
        missing.append("asyncio.StreamWriter.write (self._transport.write)")
    if lacks(BatchBuilder.append, "_builder", "append"):
        missing.append("aiokafka.producer.message_accumulator.BatchBuilder.append (self._builder.append)")
    if list(inspect.signature(aiokafka.cluster.ClusterMetadata.update_metadata).parameters)[:2] != ["self", "metadata"]:
        missing.append("aiokafka.cluster.ClusterMetadata.update_metadata(metadata)")
    for cls, names in attributes.items():
        missing += lacks(cls, *names)
    return missing


def _partition_fields(response: Any) -> tuple[str, ...]:
    """The field names of a Fetch response's per-partition entries (for :func:`check_internals`)."""
    topics = dict(zip(response.SCHEMA.names, response.SCHEMA.fields, strict=True))["topics"]
    partitions = dict(zip(topics.array_of.names, topics.array_of.fields, strict=True))["partitions"]
    return tuple(partitions.array_of.names)


# Everything below hooks *instances*, never a class or a module, and never so that CPython hears
# of it on the client's hot path. In CPython 3.11+ an object's attributes live in a values array
# keyed by its class's shared keys while nobody asks for its ``__dict__`` and it keeps fewer
# than about 30 of them; then ``obj.attr`` and ``obj.method()`` are specialized to an index read.
# Three things spoil that, for every instance of the class, in the client's own code:
# - reading ``obj.__dict__`` or assigning ``obj.__class__`` (the dict is materialized for good);
# - one attribute too many on an object near the limit (aiokafka's connections hold 25 of ~28);
# - an instance attribute named like a method the client calls per record (the name enters the
#   class's shared keys and ``obj.method()`` is no longer specialized anywhere in the process).
# So: presence is tested with ``getattr``, a connection gets three attributes, bound methods of
# one :class:`_HookedConnection`, its writer a new value for its ``_transport``, and the
# per-record objects (batches, builders) nothing on the per-record path (:class:`_FirstAppend`).
# ``tests/test_specialization.py`` compares the client's specialized code with and without us.


class _HookedConnection:
    """One connection's hooks: its ``send``, ``_handle_frame`` and ``close``, installed on the
    instance as bound methods of this object, which holds the connection weakly (no reference
    cycle keeps a closed connection alive); and the timing of its frame writes, through a
    :class:`_TimedTransport` in the place of its writer's transport."""

    __slots__ = ("__weakref__", "_conn", "_pending", "tap")

    def __init__(self, conn: Any, tap: ConnectionTap) -> None:
        self._conn = weakref.ref(conn)
        self._pending: Request | None = None
        self.tap = tap

    def install(self, conn: Any) -> None:
        writer = conn._writer
        writer._transport = _TimedTransport(writer._transport, self)
        conn.send = self.send
        conn._handle_frame = self.handle_frame
        conn.close = self.close

    def send(self, request: Any, expect_response: bool = True) -> Any:
        """``AIOKafkaConnection.send``: tells the write which request its frame carries."""
        conn: Any = self._conn()  # alive: it is the one calling
        try:
            tap = self.tap
            key = request.API_KEY
            produce = request._topics if key == _PRODUCE and tap.want_produce_batches else None
            created = _created_ns.get() or _clock.monotonic_ns()
            # The frame size is known only once encoded; ``written`` takes it from the write.
            req = self._pending = tap.new_request(key, created, 0, expect_response, produce)
            if key == _OFFSET_COMMIT and tap.want_commits:
                req.commits = (
                    request._consumer_group,
                    {(topic, p[0]): p[1] for topic, parts in request._topics for p in parts},
                )
        except Exception as exc:
            internal_error("aiokafka.send", exc)
        try:
            return AIOKafkaConnection.send(conn, request, expect_response=expect_response)
        finally:
            # Encoding can fail before the write (unsupported version): never leave a stale request.
            self._pending = None

    def handle_frame(self, resp: bytes) -> None:
        """``AIOKafkaConnection._handle_frame``: the read hook before decoding, the rest after."""
        conn: Any = self._conn()  # alive: it is the one calling
        tap = self.tap
        req = None
        try:
            req = tap.frame_read(len(resp) + 4, _clock.monotonic_ns())
        except Exception as exc:
            internal_error("aiokafka.read", exc)
        requests = conn._requests
        fut = requests[0][2] if requests else None
        AIOKafkaConnection._handle_frame(conn, resp)
        if req is None:
            return
        try:
            response = None
            if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
                response = fut.result()
            throttle_ms = 0
            if response is not None and not isinstance(response, (bytes, bytearray)):
                if req.key == _PRODUCE and req.batches:
                    tap.produce_acked(req, [(t[0], p[0], p[1], p[2]) for t in response.topics for p in t[1]])
                elif req.key == _OFFSET_COMMIT and req.commits is not None:
                    tap.commit_acked(req, [(t[0], p[0], p[1]) for t in response.topics for p in t[1]])
                elif req.key == _FETCH and tap.want_fetch_batches:
                    for topic, partitions in response.topics:
                        for p in partitions:  # (partition, error code, high watermark, ..., records)
                            tap.fetched(req, topic, p[0], p[-1], p[2], p[1])
                throttle_ms = getattr(response, "throttle_time_ms", 0) or 0
            tap.decoded(req, throttle_ms)
        except Exception as exc:
            internal_error("aiokafka.decoded", exc)

    def close(self, reason: Any = None, exc: Any = None) -> Any:
        """``AIOKafkaConnection.close``: ends the requests still on the connection."""
        conn: Any = self._conn()  # alive: it is the one calling
        was_open = conn._reader is not None
        result = AIOKafkaConnection.close(conn, reason=reason, exc=exc)
        if was_open:
            try:
                self.tap.closed(exc)
            except Exception as err:
                internal_error("aiokafka.close", err)
        return result


class _TimedTransport:
    """Stands in for a hooked connection's transport in its ``StreamWriter`` (whose ``write`` is
    ``self._transport.write(data)``): the write of a frame that carries a request (the one
    :meth:`_HookedConnection.send` is encoding) is timed, anything else goes to the transport
    itself. A ``write`` on the writer instance would put that name into ``StreamWriter``'s shared
    keys and unspecialize ``writer.write(...)`` in every asyncio stream of the process; swapping the
    value of ``_transport`` changes no shape."""

    __slots__ = ("_hooks", "_transport")

    def __init__(self, transport: Any, hooks: _HookedConnection) -> None:
        self._transport = transport
        self._hooks = hooks

    def write(self, data: Any) -> None:
        hooks = self._hooks
        req = hooks._pending
        if req is None:
            self._transport.write(data)
            return
        hooks._pending = None
        start = _clock.monotonic_ns()
        try:
            self._transport.write(data)
        except BaseException as exc:
            try:
                hooks.tap.written(req, 0, start, _clock.monotonic_ns(), exc)
            except Exception as err:
                internal_error("aiokafka.write", err)
            raise
        try:
            hooks.tap.written(req, len(data), start, _clock.monotonic_ns(), None)
        except Exception as exc:
            internal_error("aiokafka.write", exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def __repr__(self) -> str:
        return repr(self._transport)


def _hooked(conn: Any) -> bool:
    return isinstance(getattr(conn.send, "__self__", None), _HookedConnection)


def broker_meta(client: AIOKafkaClient, node_id: Any) -> BrokerMeta:
    """Our view of an aiokafka node id."""
    node = client.cluster.broker_metadata(node_id)
    host = getattr(node, "host", "") or ""
    port = int(getattr(node, "port", 0) or 0)
    if not isinstance(node_id, int):
        return BrokerMeta.seed(0, host, port)
    return BrokerMeta(node_id, host, port, getattr(node, "rack", None))


def _attach(client: Any, node_id: Any, conn: Any, started_ns: int | None) -> None:
    """Hook one new connection of ``client``: its writes, its reads, its close. ``started_ns`` is
    when the client took its connection lock, just before ``create_conn`` (dial, TLS handshake,
    ApiVersions, SASL); None if not known (the connection's set-up then reads as 0)."""
    now = _clock.monotonic_ns()
    tap = ConnectionTap(client._kh_dispatch, broker_meta(client, node_id), _decompress, _first_headers)
    tap.connect_start_ns = started_ns if started_ns is not None and started_ns <= now else now
    _HookedConnection(conn, tap).install(conn)
    tap.connect_done(None, now)


class _StampedLock(asyncio.Lock):
    """The client's ``_get_conn_lock``, which ``_get_conn`` takes only to create a connection:
    it notes when it was acquired, the start of that connection's set-up. (aiokafka's own
    ``_last_action`` is no clock for it: every response, ApiVersions' included, moves it.)"""

    acquired_ns = 0

    async def acquire(self) -> Literal[True]:
        await super().acquire()
        self.acquired_ns = _clock.monotonic_ns()
        return True


class _HookingConns(dict):  # type: ignore[type-arg]
    """The client's connection table: a new connection is hooked the moment it is stored, so the
    per-request lookups (``ready()`` -> ``_get_conn`` on every send) stay dict lookups."""

    _kh_client: Any
    _kh_lock: _StampedLock | None = None

    def __setitem__(self, conn_id: Any, conn: Any) -> None:
        if type(conn) is AIOKafkaConnection and not _hooked(conn):
            lock = self._kh_lock
            started = lock.acquired_ns if lock is not None and lock.locked() else None
            try:
                _attach(self._kh_client, conn_id[0], conn, started)
            except Exception as exc:
                internal_error("aiokafka.attach", exc)
        super().__setitem__(conn_id, conn)


async def _client_send(self: Any, node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    """``AIOKafkaClient.send`` of a hooked client: stamps when the request was created."""
    started = _clock.monotonic_ns()
    token = _created_ns.set(started)
    try:
        return await AIOKafkaClient.send(self, node_id, request, *args, **kwargs)
    except NodeNotReadyError as exc:
        # ready() could not connect (aiokafka logs the cause and returns no connection).
        try:
            tap = ConnectionTap(self._kh_dispatch, broker_meta(self, node_id), None)
            tap.connect_start_ns = started
            tap.connect_done(exc)
        except Exception as err:
            internal_error("aiokafka.connect_failed", err)
        raise
    finally:
        _created_ns.reset(token)


def hook_client(client: AIOKafkaClient, dispatch: HookDispatcher) -> None:
    """Make this one client object (not its class, not the module) report to ``dispatch``."""
    if type(client) is not AIOKafkaClient or getattr(client, "_kh_dispatch", None) is not None:
        return
    client._kh_dispatch = dispatch
    conns = _HookingConns(client._conns)
    conns._kh_client = client
    if getattr(client, "_get_conn_lock_value", None) is None:  # made on first use: make ours
        conns._kh_lock = client._get_conn_lock_value = _StampedLock()
    client._conns = conns
    client.send = MethodType(_client_send, client)


def watch_cluster_id(client: AIOKafkaClient, identity: ClientIdentity) -> None:
    """Keep ``identity.cluster_id`` at the cluster id of every Metadata response this client
    applies (aiokafka's own metadata object does not keep it; the bootstrap response included)."""
    try:
        cluster = client.cluster
        if getattr(cluster, "_kh_watched", False):
            return
        ref = weakref.ref(cluster)  # not the bound method: no reference cycle through the cluster
        update = type(cluster).update_metadata

        def update_metadata(metadata: Any) -> Any:
            try:
                found = getattr(metadata, "cluster_id", None)
                if found and isinstance(found, str) and len(found) <= MAX_CLUSTER_ID:
                    identity.cluster_id = found
            except Exception as exc:
                internal_error("aiokafka.cluster_id", exc)
            return update(ref(), metadata)

        cluster.update_metadata = update_metadata
        cluster._kh_watched = True
    except Exception as exc:  # never the client's problem
        internal_error("aiokafka.watch_cluster_id", exc)


def client_id(client: AIOKafkaClient) -> str | None:
    """The client id aiokafka resolved for this client."""
    value = getattr(client, "_client_id", None)
    return str(value) if value else None


class _Injection:
    """One producer's header injection: its dispatcher, accumulator and header gate."""

    __slots__ = ("accumulator", "dispatch", "gate")

    def __init__(self, dispatch: HookDispatcher, accumulator: Any) -> None:
        self.dispatch = dispatch
        self.accumulator = accumulator
        self.gate = HeaderGate()


def install_batch_headers(producer: Any, dispatch: HookDispatcher) -> None:
    """Let ``dispatch``'s injectors add headers to the first record of each new producer batch.

    Cost is per batch, not per record: the accumulator's ``_append_batch`` (called once per new
    batch, in the sending task) puts a :class:`_FirstAppend` in the fresh ``BatchBuilder``'s place
    for its record builder, which adds the headers to the record about to be appended and then
    steps aside. Hand-built batches (``send_batch``) arrive already filled and are left alone.

    A batch that got such headers gets a one-shot ``failure``: if the broker refuses it for them
    (see :mod:`kafkahooks._wire._rejected`), it is rebuilt without them and put back in the
    accumulator for the sender to send again, and this producer injects no more.
    """
    accumulator = producer._message_accumulator
    original = accumulator._append_batch
    injection = _Injection(dispatch, accumulator)
    gate = injection.gate

    def _append_batch(builder: Any, tp: Any) -> Any:
        batch = original(builder, tp)
        try:
            # Only a batch the accumulator opens for send() (add_message appends its record next);
            # a hand-built one (send_batch, even empty) keeps aiokafka's own builder, which aiokafka
            # asserts when it stamps an idempotent producer's state. aiokafka 0.13+ always writes v2
            # batches (brokers 0.11+), so headers can always be sent.
            if gate.open and sys._getframe(1).f_code is _ADD_MESSAGE and builder.record_count() == 0:
                builder._builder = _FirstAppend(builder, batch, tp, injection)
        except Exception as exc:
            internal_error("aiokafka.append_batch", exc)
        return batch

    accumulator._append_batch = _append_batch


class _FirstAppend:
    """Stands in for a new batch's record builder (``BatchBuilder._builder``, aiokafka's compiled
    ``DefaultRecordBatchBuilder``) until the batch's first record: adds the injectors' headers to
    that record, then puts the real builder back, so every later record goes straight to it.

    Why not an ``append`` on the ``BatchBuilder`` instance, as before: an instance attribute named
    like a method puts that name into the class's shared instance keys, and from then on CPython
    3.11 cannot specialize ``self._builder.append(...)`` in ``MessageBatch.append`` for *any* batch
    of the process (it stays ``LOAD_METHOD_ADAPTIVE``): a cost on every record, in the client's own
    code. Swapping the value of an attribute the builder already has changes nothing of the kind.
    The proxy lets go of the builder at the first append, so no reference cycle outlives it.
    """

    __slots__ = ("_batch", "_injection", "_owner", "_real", "_tp")

    def __init__(self, owner: Any, batch: Any, tp: Any, injection: _Injection) -> None:
        self._owner = owner
        self._real = owner._builder
        self._batch = batch
        self._tp = tp
        self._injection = injection

    def _restore(self) -> Any:
        owner, self._owner = self._owner, None
        if owner is not None:
            owner._builder = self._real
        return self._real

    def append(self, offset: Any, timestamp: Any, key: Any, value: Any, headers: Any) -> Any:
        owner, batch, real = self._owner, self._batch, self._real
        self._owner = self._batch = None
        if owner is not None:
            owner._builder = real
        tp, injection = self._tp, self._injection
        dispatch = injection.dispatch
        extra = None
        try:
            if dispatch.has_record_header_injectors:
                headers = _with_record_headers(dispatch, tp, headers)
                if owner is not None:
                    _inject_on_every_append(owner, tp, dispatch)  # the batch's later records
            extra = dispatch.inject_batch_headers(tp.topic, tp.partition, headers or ())
            if extra:
                headers = [*(headers or ()), *extra]
        except Exception as exc:
            internal_error("aiokafka.first_append", exc)
        metadata = real.append(offset, timestamp, key=key, value=value, headers=headers)
        if extra and metadata is not None and batch is not None:
            _watch_refusal(batch, tuple(k for k, _ in extra), injection.gate, injection.accumulator)
        return metadata

    def __getattr__(self, name: str) -> Any:
        # Anything but append before the first record (size() or build() of a batch that stays
        # empty): the real builder answers, and takes its place back.
        return getattr(self._restore(), name)


def _with_record_headers(dispatch: HookDispatcher, tp: Any, headers: Any) -> Any:
    extra = dispatch.inject_record_headers(tp.topic, tp.partition, headers or ())
    return [*(headers or ()), *extra] if extra else headers


def _inject_on_every_append(builder: Any, tp: Any, dispatch: HookDispatcher) -> None:
    """Per-record headers (``inject_record_headers``) on every record appended to ``builder``: one
    call per record, no record object, no coroutine. The override lives in the builder's own
    ``__dict__`` and holds it weakly (no reference cycle per batch); it costs what per-record
    headers cost, and is installed only by a producer that asked for them."""
    class_append = type(builder).append
    builder_ref = weakref.ref(builder)

    def every_append(*, timestamp: Any, key: Any, value: Any, headers: Any = None) -> Any:
        try:
            headers = _with_record_headers(dispatch, tp, headers)
        except Exception as exc:
            internal_error("aiokafka.record_headers", exc)
        return class_append(builder_ref(), timestamp=timestamp, key=key, value=value, headers=headers)

    builder.append = every_append


def _watch_refusal(batch: Any, injected: tuple[str, ...], gate: HeaderGate, accumulator: Any) -> None:
    class_failure = type(batch).failure
    ref = weakref.ref(batch)

    def failure(exception: BaseException) -> Any:
        batch = ref()
        if batch is None:  # pragma: no cover - the caller holds the batch
            return None
        del batch.failure
        try:
            if refuses_headers(exception):
                gate.refused(exception)
                rebuilt = without_injected(batch.get_data_buffer(), injected, *_RECORD_CODEC)
                if rebuilt is not None:
                    batch._builder._buffer = rebuilt
                    accumulator.reenqueue(batch)
                    return None
        except Exception as exc:
            internal_error("aiokafka.batch_failure", exc)
        return class_failure(batch, exception)

    batch.failure = failure


# -- consumer hand-outs, per record batch ---------------------------------------------------------


class _HandOutRecords:
    """aiokafka's ``MemoryRecords`` as one partition's record iterator walks it: the cursor hears
    when the iterator enters a data batch and when it asks for the next one (nothing per record)."""

    __slots__ = ("_cursor", "_records")

    def __init__(self, records: Any, cursor: BatchCursor) -> None:
        self._records = records
        self._cursor = cursor

    def has_next(self) -> Any:
        more = self._records.has_next()
        try:
            self._cursor.finished()
        except Exception as exc:
            internal_error("aiokafka.handout", exc)
        return more

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        try:
            if batch is not None and not getattr(batch, "is_control_batch", False):
                self._cursor.entered(batch.base_offset, batch.next_offset, getattr(batch, "first_timestamp", -1))
        except Exception as exc:
            internal_error("aiokafka.handout", exc)
        return batch

    def size_in_bytes(self) -> Any:
        return self._records.size_in_bytes()


class _HandOutFetchResults(collections.OrderedDict):  # type: ignore[type-arg]
    """The fetcher's buffered results (``Fetcher._records``): each new partition result's records
    get a :class:`BatchCursor`; a result dropped before it was used up (a seek, a rebalance,
    ``stop()``) tells its cursor where it stopped."""

    _kh_tracker: HandOutTracker
    _kh_open: dict[Any, tuple[Any, BatchCursor]]

    def __setitem__(self, tp: Any, result: Any) -> None:
        if tp in self._kh_open:
            self._kh_release(tp)
        records = getattr(result, "_partition_records", None)
        if records is not None:
            try:
                cursor = self._kh_tracker.cursor(tp.topic, tp.partition, records.next_fetch_offset)
                records._records = _HandOutRecords(records._records, cursor)
                self._kh_open[tp] = (records, cursor)
            except Exception as exc:
                internal_error("aiokafka.handout", exc)
        super().__setitem__(tp, result)

    def __delitem__(self, tp: Any) -> None:
        super().__delitem__(tp)
        if tp in self._kh_open:
            self._kh_release(tp)

    def clear(self) -> None:
        super().clear()
        self._kh_release_all()

    def _kh_release(self, tp: Any) -> None:
        records, cursor = self._kh_open.pop(tp)
        try:
            cursor.abandoned(records.next_fetch_offset)
        except Exception as exc:
            internal_error("aiokafka.handout", exc)

    def _kh_release_all(self) -> None:
        for tp in list(self._kh_open):
            self._kh_release(tp)


def observe_handouts(fetcher: Any, tracker: HandOutTracker) -> None:
    """Report the records this consumer's fetcher hands out, per record batch, to ``tracker``.

    Called right after ``start()`` created the fetcher: results already buffered by then have not
    been handed out (the application cannot consume before ``start()`` returns) and are adopted.
    """
    if isinstance(fetcher._records, _HandOutFetchResults):
        return
    results = _HandOutFetchResults()
    results._kh_tracker = tracker
    results._kh_open = {}
    for tp, result in fetcher._records.items():
        results[tp] = result
    fetcher._records = results


def release_handouts(fetcher: Any) -> None:
    """The consumer stopped: count what was handed out of batches left half-way."""
    results = getattr(fetcher, "_records", None)
    if isinstance(results, _HandOutFetchResults):
        results._kh_release_all()


class AiokafkaAdapter:
    """:class:`~kafkahooks._wire._adapter.WireAdapter` for aiokafka."""

    library = "aiokafka"
    tracing_modes = frozenset({"off", "hooks", "records"})

    def prepare(self, inst: Instrumentation, configs: dict[str, Any]) -> None:
        """aiokafka's client is hooked after construction: nothing to change before."""

    def install(self, client: Any, inst: Instrumentation) -> str | None:
        net = client.client if inst.role == "producer" else client._client
        dispatch = inst.dispatch
        if inst.installed:
            hook_client(net, dispatch)
        if inst.role == "producer" and (dispatch.has_batch_header_injectors or dispatch.has_record_header_injectors):
            install_batch_headers(client, dispatch)
        watch_cluster_id(net, inst.identity)
        return client_id(net)

    def consumer_started(self, consumer: Any, tracker: HandOutTracker) -> None:
        observe_handouts(consumer._fetcher, tracker)

    def consumer_closed(self, consumer: Any) -> None:
        if consumer._fetcher is not None:
            release_handouts(consumer._fetcher)

    def check_internals(self) -> list[str]:
        return check_internals()


ADAPTER = AiokafkaAdapter()
