"""aiokafka 0.13-0.14 adapter: the only module that touches aiokafka's internals.

Per client, never global: aiokafka builds its ``AIOKafkaClient`` inline and connections through the
module function ``create_conn``, so patching either would touch every client in the process.
Instead the wrapped producer/consumer gives *its own* client object (before ``start()``) a hooked
``send`` and a connection table that hooks each connection it stores: its ``send``,
``_handle_frame``, ``close`` and its ``StreamWriter``'s ``write``. All are instance attributes;
no class is patched and no object's class is reassigned (which would slow every attribute read
on it in CPython 3.11: aiokafka reads its client's for every message).

Where the timings come from (all in the event loop):

- created: entry of ``AIOKafkaClient.send`` (carried to the connection in a ``ContextVar``), so
  ``write_wait`` includes waiting for the connection to be ready and encoding.
- write: around ``StreamWriter.write`` of the frame. asyncio's transport tries ``sock.send`` at once
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
import time
import weakref
from collections.abc import Callable
from types import MethodType
from typing import TYPE_CHECKING, Any

import aiokafka
from aiokafka import codec as _codec
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import NodeNotReadyError
from aiokafka.producer.message_accumulator import BatchBuilder, MessageBatch
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkahooks import _clock
from kafkahooks._identity import MAX_CLUSTER_ID, ClientIdentity
from kafkahooks._wire._guard import internal_error
from kafkahooks._wire._rejected import HeaderGate, refuses_headers, without_injected
from kafkahooks._wire._tap import ConnectionTap
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker
from kafkahooks.hooks._types import ApiKey, BrokerMeta

if TYPE_CHECKING:
    from kafkahooks._instrument import Instrumentation

_RECORD_CODEC = (DefaultRecordBatch, DefaultRecordBatchBuilder)
"""The client's own v2 batch reader and builder (to resend a refused batch without our headers)."""

VERIFIED_VERSIONS = ">=0.13,<0.15"
_PRODUCE = int(ApiKey.PRODUCE)
_FETCH = int(ApiKey.FETCH)
_OFFSET_COMMIT = int(ApiKey.OFFSET_COMMIT)
_SASL = int(ApiKey.SASL_AUTHENTICATE)

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
    from aiokafka.producer.message_accumulator import MessageAccumulator

    methods: dict[type, tuple[str, ...]] = {
        AIOKafkaClient: ("_get_conn", "send"),
        MessageAccumulator: ("_append_batch", "add_message", "reenqueue"),
        MessageBatch: ("failure", "get_data_buffer"),
        BatchBuilder: ("append", "record_count", "_build"),
        AIOKafkaConnection: ("send", "_send_sasl_token", "_handle_frame", "close"),
        asyncio.StreamWriter: ("write",),
    }
    attributes: dict[type, tuple[str, ...]] = {
        AIOKafkaClient: ("cluster", "_conns"),
        AIOKafkaConnection: ("_requests", "_writer", "_reader"),
        BatchBuilder: ("_buffer",),
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
    unpack = inspect.getsource(fetcher.PartitionRecords._unpack_records)
    if "records.has_next()" not in unpack or "records.next_batch()" not in unpack:
        missing.append("aiokafka.consumer.fetcher.PartitionRecords._unpack_records (has_next/next_batch)")
    from aiokafka.protocol import fetch

    for name in dir(fetch):
        if name.startswith("FetchResponse_v"):
            partition_fields = _partition_fields(getattr(fetch, name))
            if partition_fields[:3] != ("partition", "error_code", "highwater_offset"):
                missing.append(f"aiokafka.protocol.fetch.{name} partitions (partition, error_code, highwater_offset)")
    cluster_source = inspect.getsource(aiokafka.cluster.ClusterMetadata)
    if "def update_metadata(self, metadata" not in cluster_source:
        missing.append("aiokafka.cluster.ClusterMetadata.update_metadata(metadata)")
    for cls, names in attributes.items():
        source = inspect.getsource(cls)
        missing += [f"{cls.__module__}.{cls.__qualname__}.{n}" for n in names if f"self.{n}" not in source]
    return missing


def _partition_fields(response: Any) -> tuple[str, ...]:
    """The field names of a Fetch response's per-partition entries (for :func:`check_internals`)."""
    topics = dict(zip(response.SCHEMA.names, response.SCHEMA.fields, strict=True))["topics"]
    partitions = dict(zip(topics.array_of.names, topics.array_of.fields, strict=True))["partitions"]
    return tuple(partitions.array_of.names)


# Everything below hooks *instances*, through instance attributes, never by assigning
# ``__class__``: in CPython 3.11 an object whose class was reassigned loses its fast attribute
# access for good (a lookup costs ~2.5x), and aiokafka reads attributes of its client and of each
# batch for every message. Adding an instance attribute costs nothing of the kind.


def _writer_write(self: Any, data: Any) -> None:
    """``StreamWriter.write`` of a hooked connection: times the write of each request frame."""
    req = self._kh_pending
    if req is None:
        type(self).write(self, data)
        return
    self._kh_pending = None
    start = _clock.monotonic_ns()
    err: BaseException | None = None
    try:
        type(self).write(self, data)
    except BaseException as exc:
        err = exc
        raise
    finally:
        try:
            self._kh_tap.written(req, len(data) if err is None else 0, start, _clock.monotonic_ns(), err)
        except Exception as exc:
            internal_error("aiokafka.write", exc)


def _prepare(conn: Any, key: int, expect_response: bool, produce: Any) -> Any:
    """Tell the writer which request its next write carries; returns the writer to clear after."""
    writer = conn._writer
    if writer is None:
        return None
    try:
        created = _created_ns.get() or _clock.monotonic_ns()
        # The frame size is known only once encoded; ``written`` takes it from the write.
        writer._kh_pending = conn._kh_tap.new_request(key, created, 0, expect_response, produce)
    except Exception as exc:
        internal_error("aiokafka.send", exc)
    return writer


def _conn_send(self: Any, request: Any, expect_response: bool = True) -> Any:
    key = request.API_KEY
    tap = self._kh_tap
    produce = request._topics if key == _PRODUCE and tap.want_produce_batches else None
    writer = _prepare(self, key, expect_response, produce)
    if key == _OFFSET_COMMIT and writer is not None and writer._kh_pending is not None and tap.want_commits:
        try:
            writer._kh_pending.commits = (
                request._consumer_group,
                {(topic, p[0]): p[1] for topic, parts in request._topics for p in parts},
            )
        except Exception as exc:
            internal_error("aiokafka.commit", exc)
    try:
        return AIOKafkaConnection.send(self, request, expect_response=expect_response)
    finally:
        # Encoding can fail before the write (unsupported version): never leave a stale request.
        if writer is not None:
            writer._kh_pending = None


def _conn_send_sasl_token(self: Any, payload: Any, expect_response: bool = True) -> Any:
    writer = _prepare(self, _SASL, expect_response, None)
    try:
        return AIOKafkaConnection._send_sasl_token(self, payload, expect_response=expect_response)
    finally:
        if writer is not None:
            writer._kh_pending = None


def _conn_handle_frame(self: Any, resp: bytes) -> None:
    tap = self._kh_tap
    req = None
    try:
        req = tap.frame_read(len(resp) + 4, _clock.monotonic_ns())
    except Exception as exc:
        internal_error("aiokafka.read", exc)
    fut = self._requests[0][2] if self._requests else None
    AIOKafkaConnection._handle_frame(self, resp)
    if req is None:
        return
    try:
        response = None
        if fut is not None and fut.done() and not fut.cancelled() and fut.exception() is None:
            response = fut.result()
        throttle_ms = 0
        if response is not None and not isinstance(response, (bytes, bytearray)):
            if req.key == _PRODUCE and req.batches:
                tap.produce_acked(req, ((t[0], p[0], p[1], p[2]) for t in response.topics for p in t[1]))
            elif req.key == _OFFSET_COMMIT and req.commits is not None:
                tap.commit_acked(req, ((t[0], p[0], p[1]) for t in response.topics for p in t[1]))
            elif req.key == _FETCH and tap.want_fetch_batches:
                for topic, partitions in response.topics:
                    for p in partitions:  # (partition, error code, high watermark, ..., records)
                        tap.fetched(req, topic, p[0], p[-1], p[2], p[1])
            throttle_ms = getattr(response, "throttle_time_ms", 0) or 0
        tap.decoded(req, throttle_ms)
    except Exception as exc:
        internal_error("aiokafka.decoded", exc)


def _conn_close(self: Any, reason: Any = None, exc: Any = None) -> Any:
    was_open = self._reader is not None
    result = AIOKafkaConnection.close(self, reason=reason, exc=exc)
    if was_open:
        try:
            self._kh_tap.closed(exc)
        except Exception as err:
            internal_error("aiokafka.close", err)
    return result


def broker_meta(client: AIOKafkaClient, node_id: Any) -> BrokerMeta:
    """Our view of an aiokafka node id."""
    node = client.cluster.broker_metadata(node_id)
    host = getattr(node, "host", "") or ""
    port = int(getattr(node, "port", 0) or 0)
    if not isinstance(node_id, int):
        return BrokerMeta.seed(0, host, port)
    return BrokerMeta(node_id, host, port, getattr(node, "rack", None))


def _attach(client: Any, node_id: Any, conn: Any) -> None:
    """Hook one new connection of ``client``: its writes, its reads, its close."""
    now = _clock.monotonic_ns()
    tap = ConnectionTap(client._kh_dispatch, broker_meta(client, node_id), _decompress, _first_headers)
    # aiokafka stamps _last_action when it builds the connection, before connect(): the set-up
    # (dial, ApiVersions, SASL) ran from then until now.
    built_s = getattr(conn, "_last_action", None)
    tap.connect_start_ns = now - max(int((time.monotonic() - built_s) * 1e9), 0) if built_s else now
    writer = conn._writer
    writer._kh_tap = tap
    writer._kh_pending = None
    writer.write = MethodType(_writer_write, writer)
    conn._kh_tap = tap
    conn.send = MethodType(_conn_send, conn)
    conn._send_sasl_token = MethodType(_conn_send_sasl_token, conn)
    conn._handle_frame = MethodType(_conn_handle_frame, conn)
    conn.close = MethodType(_conn_close, conn)
    tap.connect_done(None, now)


class _HookingConns(dict):  # type: ignore[type-arg]
    """The client's connection table: a new connection is hooked the moment it is stored, so the
    per-request lookups (``ready()`` -> ``_get_conn`` on every send) stay dict lookups."""

    _kh_client: Any

    def __setitem__(self, conn_id: Any, conn: Any) -> None:
        if type(conn) is AIOKafkaConnection and "_kh_tap" not in conn.__dict__:
            try:
                _attach(self._kh_client, conn_id[0], conn)
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
    if type(client) is not AIOKafkaClient or "_kh_dispatch" in client.__dict__:
        return
    client._kh_dispatch = dispatch
    conns = _HookingConns(client._conns)
    conns._kh_client = client
    client._conns = conns
    client.send = MethodType(_client_send, client)


def watch_cluster_id(client: AIOKafkaClient, identity: ClientIdentity) -> None:
    """Keep ``identity.cluster_id`` at the cluster id of every Metadata response this client
    applies (aiokafka's own metadata object does not keep it; the bootstrap response included)."""
    try:
        cluster = client.cluster
        if "_kh_watched" in cluster.__dict__:
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


def install_batch_headers(producer: Any, dispatch: HookDispatcher) -> None:
    """Let ``dispatch``'s injectors add headers to the first record of each new producer batch.

    Cost is per batch, not per record: the accumulator's ``_append_batch`` (called once per new
    batch, in the sending task) gives the fresh ``BatchBuilder`` a one-shot ``append`` that adds the
    headers to the record about to be appended and then removes itself. Hand-built batches
    (``send_batch``) arrive already filled and are left alone.

    A batch that got such headers gets a one-shot ``failure``: if the broker refuses it for them
    (see :mod:`kafkahooks._wire._rejected`), it is rebuilt without them and put back in the
    accumulator for the sender to send again, and this producer injects no more.
    """
    accumulator = producer._message_accumulator
    original = accumulator._append_batch
    gate = HeaderGate()

    def _append_batch(builder: Any, tp: Any) -> Any:
        batch = original(builder, tp)
        try:
            # aiokafka 0.13+ always writes v2 batches (brokers 0.11+), so headers can always be sent.
            if gate.open and builder.record_count() == 0:
                _inject_on_first_append(builder, batch, tp, dispatch, gate, accumulator)
        except Exception as exc:
            internal_error("aiokafka.append_batch", exc)
        return batch

    accumulator._append_batch = _append_batch


def _inject_on_first_append(
    builder: Any, batch: Any, tp: Any, dispatch: HookDispatcher, gate: HeaderGate, accumulator: Any
) -> None:
    class_append = type(builder).append
    # Weak references: the overrides live in the objects' own __dict__, and holding them strongly
    # would make every batch (its buffer, one future per record) a reference cycle, freed only by
    # the garbage collector.
    builder_ref, batch_ref = weakref.ref(builder), weakref.ref(batch)

    def first_append(*, timestamp: Any, key: Any, value: Any, headers: Any = None) -> Any:
        builder = builder_ref()
        if builder is None:  # pragma: no cover - the caller holds the builder
            return None
        del builder.append
        extra = None
        try:
            if dispatch.has_record_header_injectors:
                headers = _with_record_headers(dispatch, tp, headers)
                _inject_on_every_append(builder, tp, dispatch)  # the batch's later records
            extra = dispatch.inject_batch_headers(tp.topic, tp.partition, headers or ())
            if extra:
                headers = [*(headers or ()), *extra]
        except Exception as exc:
            internal_error("aiokafka.first_append", exc)
        metadata = class_append(builder, timestamp=timestamp, key=key, value=value, headers=headers)
        if extra and metadata is not None:
            batch = batch_ref()
            if batch is not None:
                _watch_refusal(batch, tuple(k for k, _ in extra), gate, accumulator)
        return metadata

    builder.append = first_append


def _with_record_headers(dispatch: HookDispatcher, tp: Any, headers: Any) -> Any:
    extra = dispatch.inject_record_headers(tp.topic, tp.partition, headers or ())
    return [*(headers or ()), *extra] if extra else headers


def _inject_on_every_append(builder: Any, tp: Any, dispatch: HookDispatcher) -> None:
    """Per-record headers (``inject_record_headers``) on every record appended to ``builder``: one
    call per record, no record object, no coroutine (the builder is referenced weakly, as above)."""
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
