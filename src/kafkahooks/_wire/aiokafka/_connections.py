"""aiokafka's connections, hooked per client: each request's write, each response's frame, each
connection's life, reported to a :class:`~kafkahooks._wire._tap.ConnectionTap`.

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
import contextvars
import weakref
from collections.abc import Callable, Iterator
from types import MethodType
from typing import Any, Literal

from aiokafka import codec as _codec
from aiokafka.client import AIOKafkaClient
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import NodeNotReadyError
from aiokafka.record.default_records import DefaultRecordBatch

from kafkahooks import _clock
from kafkahooks._guard import internal_error
from kafkahooks._wire._shared import CommitOffsets, decompressor, node_meta, request_sent, response_decoded
from kafkahooks._wire._tap import ConnectionTap, ProduceTopics
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._records import Request
from kafkahooks.hooks._types import BrokerMeta

_created_ns: contextvars.ContextVar[int] = contextvars.ContextVar("kafkahooks_request_created_ns", default=0)
_decompress = decompressor(_codec)


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


first_headers = _compiled_first_headers()


class _Messages:
    """aiokafka's request and response objects, read as :class:`~kafkahooks._wire._shared.MessageReader`."""

    def produce_topics(self, request: Any) -> ProduceTopics:
        topics: ProduceTopics = request._topics  # [(topic, [(partition, records), ...]), ...] as sent
        return topics

    def commit_offsets(self, request: Any) -> CommitOffsets:
        return request._consumer_group, {(topic, p[0]): p[1] for topic, parts in request._topics for p in parts}

    def produce_acks(self, response: Any) -> list[tuple[str, int, int, int]]:
        return [(t[0], p[0], p[1], p[2]) for t in response.topics for p in t[1]]

    def commit_acks(self, response: Any) -> list[tuple[str, int, int]]:
        return [(t[0], p[0], p[1]) for t in response.topics for p in t[1]]

    def fetch_partitions(self, response: Any) -> Iterator[tuple[str, int, Any, int, int]]:
        for topic, partitions in response.topics:
            for p in partitions:  # (partition, error code, high watermark, ..., records)
                yield topic, p[0], p[-1], p[2], p[1]


MESSAGES = _Messages()


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
            created = _created_ns.get() or _clock.monotonic_ns()
            # The frame size is known only once encoded; ``written`` takes it from the write.
            self._pending = request_sent(self.tap, MESSAGES, request, created, 0, expect_response)
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
            if response is not None and not isinstance(response, (bytes, bytearray)):
                response_decoded(tap, MESSAGES, req, response)
            else:  # failed, cancelled, or a raw answer (SASL): the request ended all the same
                tap.decoded(req, 0)
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
    return node_meta(client.cluster, node_id)


def _attach(client: Any, node_id: Any, conn: Any, started_ns: int | None) -> None:
    """Hook one new connection of ``client``: its writes, its reads, its close. ``started_ns`` is
    when the client took its connection lock, just before ``create_conn`` (dial, TLS handshake,
    ApiVersions, SASL); None if not known (the connection's set-up then reads as 0)."""
    now = _clock.monotonic_ns()
    tap = ConnectionTap(client._kh_dispatch, broker_meta(client, node_id), _decompress, first_headers)
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
