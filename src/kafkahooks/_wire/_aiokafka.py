"""aiokafka 0.13-0.14 adapter: the only module that touches aiokafka's internals.

Per client, never global: aiokafka builds its ``AIOKafkaClient`` inline and connections through the
module function ``create_conn``, so patching either would touch every client in the process.
Instead the wrapped producer/consumer gives *its own* client object the subclass
:class:`HookedAIOKafkaClient` (an instance ``__class__`` assignment, before ``start()``), and that
client gives each new connection it gets from ``_get_conn`` the subclass
:class:`HookedAIOKafkaConnection`, and the connection's ``StreamWriter`` a hooked subclass.

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
import contextvars
import time
import weakref
from collections.abc import Callable
from typing import Any

import aiokafka
from aiokafka import codec as _codec
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import NodeNotReadyError
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kafkahooks import _clock
from kafkahooks._wire._guard import internal_error
from kafkahooks._wire._rejected import HeaderGate, refuses_headers, without_injected
from kafkahooks._wire._tap import ConnectionTap, Request
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._types import ApiKey, BrokerMeta

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


def check_internals() -> list[str]:
    """Names this adapter relies on that the installed aiokafka no longer has (empty = fine)."""
    import inspect

    from aiokafka.producer.message_accumulator import BatchBuilder, MessageAccumulator, MessageBatch

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
        aiokafka.AIOKafkaConsumer: ("_client",),
    }
    missing = [
        f"{c.__module__}.{c.__qualname__}.{n}" for c, names in methods.items() for n in names if not hasattr(c, n)
    ]
    for cls, names in attributes.items():
        source = inspect.getsource(cls)
        missing += [f"{cls.__module__}.{cls.__qualname__}.{n}" for n in names if f"self.{n}" not in source]
    return missing


class HookedStreamWriter(asyncio.StreamWriter):
    """Times the write of each request frame and reports it to the connection's tap."""

    _kh_tap: ConnectionTap
    _kh_pending: Request | None

    def write(self, data: Any) -> None:
        req = self._kh_pending
        if req is None:
            super().write(data)
            return
        self._kh_pending = None
        start = _clock.monotonic_ns()
        err: BaseException | None = None
        try:
            super().write(data)
        except BaseException as exc:
            err = exc
            raise
        finally:
            try:
                self._kh_tap.written(req, len(data) if err is None else 0, start, _clock.monotonic_ns(), err)
            except Exception as exc:
                internal_error("aiokafka.write", exc)


class HookedAIOKafkaConnection(AIOKafkaConnection):  # type: ignore[misc]
    """An ``AIOKafkaConnection`` that reports to a :class:`ConnectionTap` (assigned per instance)."""

    _kh_tap: ConnectionTap

    def _kh_prepare(self, key: int, expect_response: bool, produce: Any) -> HookedStreamWriter | None:
        """Tell the writer which request its next write carries; returns the writer to clear after."""
        writer = self._writer
        if writer is None:
            return None
        try:
            created = _created_ns.get() or _clock.monotonic_ns()
            # The frame size is known only once encoded; ``written`` takes it from the write.
            writer._kh_pending = self._kh_tap.new_request(key, created, 0, expect_response, produce)
        except Exception as exc:
            internal_error("aiokafka.send", exc)
        return writer  # type: ignore[no-any-return]

    def send(self, request: Any, expect_response: bool = True) -> Any:
        key = request.API_KEY
        produce = request._topics if key == _PRODUCE and self._kh_tap.want_produce_batches else None
        writer = self._kh_prepare(key, expect_response, produce)
        if (
            key == _OFFSET_COMMIT
            and writer is not None
            and writer._kh_pending is not None
            and self._kh_tap.want_commits
        ):
            try:
                writer._kh_pending.commits = (
                    request._consumer_group,
                    {(topic, p[0]): p[1] for topic, parts in request._topics for p in parts},
                )
            except Exception as exc:
                internal_error("aiokafka.commit", exc)
        try:
            return super().send(request, expect_response=expect_response)
        finally:
            # Encoding can fail before the write (unsupported version): never leave a stale request.
            if writer is not None:
                writer._kh_pending = None

    def _send_sasl_token(self, payload: Any, expect_response: bool = True) -> Any:
        writer = self._kh_prepare(_SASL, expect_response, None)
        try:
            return super()._send_sasl_token(payload, expect_response=expect_response)
        finally:
            if writer is not None:
                writer._kh_pending = None

    def _handle_frame(self, resp: bytes) -> None:
        tap = self._kh_tap
        req = None
        try:
            req = tap.frame_read(len(resp) + 4, _clock.monotonic_ns())
        except Exception as exc:
            internal_error("aiokafka.read", exc)
        fut = self._requests[0][2] if self._requests else None
        super()._handle_frame(resp)
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
                        for p in partitions:
                            tap.fetched(topic, p[0], p[-1])
                throttle_ms = getattr(response, "throttle_time_ms", 0) or 0
            tap.decoded(req, throttle_ms)
        except Exception as exc:
            internal_error("aiokafka.decoded", exc)

    def close(self, reason: Any = None, exc: Any = None) -> Any:
        was_open = self._reader is not None
        result = super().close(reason=reason, exc=exc)
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


class _HookingConns(dict):  # type: ignore[type-arg]
    """The client's connection table: a new connection is hooked the moment it is stored, so the
    per-request lookups (``ready()`` -> ``_get_conn`` on every send) stay dict lookups."""

    _kh_client: HookedAIOKafkaClient

    def __setitem__(self, conn_id: Any, conn: Any) -> None:
        if type(conn) is AIOKafkaConnection:
            try:
                self._kh_client._kh_attach(conn_id[0], conn)
            except Exception as exc:
                internal_error("aiokafka.attach", exc)
        super().__setitem__(conn_id, conn)


class HookedAIOKafkaClient(AIOKafkaClient):  # type: ignore[misc]
    """An ``AIOKafkaClient`` whose new connections report to this client's dispatcher."""

    _kh_dispatch: HookDispatcher

    def _kh_attach(self, node_id: Any, conn: Any) -> None:
        now = _clock.monotonic_ns()
        tap = ConnectionTap(self._kh_dispatch, broker_meta(self, node_id), _decompress)
        # aiokafka stamps _last_action when it builds the connection, before connect(): the set-up
        # (dial, ApiVersions, SASL) ran from then until now.
        built_s = getattr(conn, "_last_action", None)
        tap.connect_start_ns = now - max(int((time.monotonic() - built_s) * 1e9), 0) if built_s else now
        writer = conn._writer
        writer.__class__ = HookedStreamWriter
        writer._kh_tap = tap
        writer._kh_pending = None
        conn._kh_tap = tap
        conn.__class__ = HookedAIOKafkaConnection
        tap.connect_done(None, now)

    async def send(self, node_id: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        started = _clock.monotonic_ns()
        token = _created_ns.set(started)
        try:
            return await super().send(node_id, request, *args, **kwargs)
        except NodeNotReadyError as exc:
            # ready() could not connect (aiokafka logs the cause and returns no connection).
            self._kh_connect_failed(node_id, started, exc)
            raise
        finally:
            _created_ns.reset(token)

    def _kh_connect_failed(self, node_id: Any, started_ns: int, exc: BaseException) -> None:
        try:
            tap = ConnectionTap(self._kh_dispatch, broker_meta(self, node_id), None)
            tap.connect_start_ns = started_ns
            tap.connect_done(exc)
        except Exception as err:
            internal_error("aiokafka.connect_failed", err)


def hook_client(client: AIOKafkaClient, dispatch: HookDispatcher) -> None:
    """Make this one client object (not its class, not the module) report to ``dispatch``."""
    if type(client) is not AIOKafkaClient:
        return
    client._kh_dispatch = dispatch
    conns = _HookingConns(client._conns)
    conns._kh_client = client
    client._conns = conns
    client.__class__ = HookedAIOKafkaClient


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

    A batch that carries such headers gets a one-shot ``failure``: if the broker refuses it for
    them (see :mod:`kafkahooks._wire._rejected`), it is rebuilt without them and put back in the
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
                watch = lambda keys: _watch_refusal(batch, keys, gate, accumulator)  # noqa: E731
                _inject_on_first_append(builder, tp, dispatch, watch)
        except Exception as exc:
            internal_error("aiokafka.append_batch", exc)
        return batch

    accumulator._append_batch = _append_batch


def _inject_on_first_append(
    builder: Any, tp: Any, dispatch: HookDispatcher, injected: Callable[[tuple[str, ...]], None]
) -> None:
    class_append = type(builder).append
    ref = weakref.ref(builder)  # no cycle through the builder's __dict__ (see _watch_refusal)

    def first_append(*, timestamp: Any, key: Any, value: Any, headers: Any = None) -> Any:
        builder = ref()
        if builder is None:  # pragma: no cover - the caller holds the builder
            return None
        del builder.append
        extra = None
        try:
            extra = dispatch.inject_batch_headers(tp.topic, tp.partition, headers or ())
            if extra:
                headers = [*(headers or ()), *extra]
        except Exception as exc:
            internal_error("aiokafka.first_append", exc)
        metadata = class_append(builder, timestamp=timestamp, key=key, value=value, headers=headers)
        if extra and metadata is not None:
            injected(tuple(k for k, _ in extra))
        return metadata

    builder.append = first_append


def _watch_refusal(batch: Any, injected: tuple[str, ...], gate: HeaderGate, accumulator: Any) -> None:
    class_failure = type(batch).failure
    # The override lives in the batch's own __dict__: holding the batch strongly would make every
    # injected batch (its buffer and one future per record) a reference cycle, freed only by the
    # garbage collector (673 gen-0 collections instead of 25 per 200k records; up to ~12% of
    # produce throughput, more the larger the application's heap).
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
