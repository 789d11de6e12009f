"""kafka-python's connections, hooked per client: each request's encode and write, each response's
bytes and decode, each connection's life, reported to a :class:`~kafkahooks._wire._tap.ConnectionTap`.

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

from collections.abc import Callable, Iterator
from types import MethodType
from typing import Any

from kafka import codec as _codec
from kafka.net.compat import KafkaNetClient
from kafka.net.connection import KafkaConnection
from kafka.net.manager import KafkaConnectionManager
from kafka.net.selector import NetworkSelector

from kafkahooks import _clock
from kafkahooks._guard import internal_error
from kafkahooks._wire._shared import CommitOffsets, decompressor, node_meta, request_sent, response_decoded
from kafkahooks._wire._tap import ConnectionTap, ProduceTopics
from kafkahooks.hooks._dispatch import HookDispatcher
from kafkahooks.hooks._types import BrokerMeta

_decompress = decompressor(_codec)


class _Messages:
    """kafka-python's request and response objects, read as :class:`~kafkahooks._wire._shared.MessageReader`."""

    def produce_topics(self, request: Any) -> ProduceTopics:
        return [(t.name, [(p.index, p.records) for p in t.partition_data]) for t in request.topic_data]

    def commit_offsets(self, request: Any) -> CommitOffsets:
        return request.group_id, {
            (t.name, p.partition_index): p.committed_offset for t in request.topics for p in t.partitions
        }

    def produce_acks(self, response: Any) -> list[tuple[str, int, int, int]]:
        return [
            (t.name, p.index, p.error_code, p.base_offset) for t in response.responses for p in t.partition_responses
        ]

    def commit_acks(self, response: Any) -> Iterator[tuple[str, int, int]]:
        return ((t.name, p.partition_index, p.error_code) for t in response.topics for p in t.partitions)

    def fetch_partitions(self, response: Any) -> Iterator[tuple[str, int, Any, int, int]]:
        for t in response.responses:
            for p in t.partitions:
                yield t.topic, p.partition_index, p.records, p.high_watermark, p.error_code


MESSAGES = _Messages()


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
        req = request_sent(
            tap, MESSAGES, request, conn._kh_created_ns, len(self.bytes_to_send[-1]), request.expect_response()
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
            response_decoded(tap, MESSAGES, req, response)
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
    return node_meta(manager.cluster, node_id)


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
