"""A loopback TCP proxy that splits both directions into Kafka frames and records them.

Put it in front of a broker that advertises the proxy's port, and every byte a client exchanges
with the broker is seen here: an independent account of frame sizes and request keys to check
the hooks against, a way to cut connections on demand, and a broker that refuses record headers.
With ``tls`` it terminates TLS for the broker (whose own TLS listener does not work in Tansu 0.6):
clients speak TLS to the proxy, the proxy plaintext to the broker, and the frames it records are
the Kafka frames inside the TLS records.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ProxiedConnection:
    requests: list[tuple[int, int]] = field(default_factory=list)
    """(api key, frame size with prefix) for each request, in order."""
    responses: list[tuple[int, int]] = field(default_factory=list)
    """(api key of the request answered, frame size with prefix), in order."""


class _FrameSplitter:
    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            size = struct.unpack(">i", self.buf[:4])[0]
            if len(self.buf) < 4 + size:
                break
            frames.append(self.buf[: 4 + size])
            self.buf = self.buf[4 + size :]
        return frames


class FrameProxy:
    """Forwards 127.0.0.1:``port`` to 127.0.0.1:``target_port``, recording frames per connection."""

    def __init__(
        self, target_port: int, port: int = 0, *, tls: ssl.SSLContext | None = None, handshake_delay_s: float = 0.0
    ) -> None:
        self.target_port = target_port
        self.tls = tls
        """A server-side context: clients must speak TLS to the proxy."""
        self.handshake_delay_s = handshake_delay_s
        """Time the proxy waits before answering a TLS handshake (a slow path to the broker)."""
        self.handshakes = 0
        """TLS handshakes completed."""
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.connections: list[ProxiedConnection] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stopped = False
        self.refuse_headers = False
        """Answer Produce requests that carry record headers as a broker keeping a pre-0.11 message
        format does (see :func:`refusal_for_headers`) instead of forwarding them."""
        self.refusals = 0
        """Produce requests refused so far."""
        self.throttle_ms: dict[int, int] = {}
        """A throttle to write into the broker's responses to a request key (Produce or Fetch), as a
        broker enforcing a quota does (:func:`with_throttle`)."""
        self.response_delays: dict[int, float] = {}
        """Seconds to hold the broker's response to a request key before passing it on (a slow
        broker: later responses on the connection wait behind it, as they would)."""
        threading.Thread(target=self._accept, name="frame-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            if self.tls is not None:  # the handshake runs in the pump's thread, not here
                client = self.tls.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
            record = ProxiedConnection()
            with self._lock:
                self.connections.append(record)
                self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, record), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, record: ProxiedConnection) -> None:
        up, down = _FrameSplitter(), _FrameSplitter()
        # Per request in flight, in order: its key, and the response the proxy made up for it (None:
        # the broker answers). Made-up responses wait for the broker's earlier ones: Kafka clients
        # expect responses in request order.
        pending: list[tuple[int, int, bytes | None]] = []

        def answer(key: int, frame: bytes) -> None:
            with self._lock:
                record.responses.append((key, len(frame)))
            client.sendall(frame)

        try:
            if isinstance(client, ssl.SSLSocket):
                time.sleep(self.handshake_delay_s)
                client.settimeout(10)
                client.do_handshake()
                client.settimeout(None)
                with self._lock:
                    self.handshakes += 1
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
                if self._stopped:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    # Decrypted bytes the TLS layer holds back are invisible to select: take them now.
                    while isinstance(sock, ssl.SSLSocket) and sock.pending():
                        data += sock.recv(sock.pending())
                    if sock is client:
                        for frame in up.feed(data):
                            key, version = struct.unpack(">hh", frame[4:8])
                            with self._lock:
                                record.requests.append((key, len(frame)))
                            made_up = refusal_for_headers(frame) if self.refuse_headers else None
                            if made_up is None:
                                pending.append((key, version, None))
                                upstream.sendall(frame)
                            elif pending:
                                pending.append((key, version, made_up))
                            else:
                                self.refusals += 1
                                answer(key, made_up)
                    else:
                        for broker_frame in down.feed(data):
                            key, version, _ = pending.pop(0) if pending else (-1, -1, None)
                            throttle = self.throttle_ms.get(key)
                            frame = with_throttle(broker_frame, key, version, throttle) if throttle else broker_frame
                            delay = self.response_delays.get(key)
                            if delay:
                                time.sleep(delay)
                            answer(key, frame)
                            while pending and pending[0][2] is not None:
                                key, _, made_up = pending.pop(0)
                                self.refusals += 1
                                answer(key, made_up or b"")
        except (OSError, ValueError):  # ValueError: a TLS socket closed under the pump
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def requests(self) -> list[tuple[int, int]]:
        with self._lock:
            return [r for c in self.connections for r in c.requests]

    def responses(self) -> list[tuple[int, int]]:
        with self._lock:
            return [r for c in self.connections for r in c.responses]

    def reset(self) -> None:
        with self._lock:
            self.connections.clear()

    def cut_all(self) -> None:
        """Drop every proxied connection (both sides see a reset)."""
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        self.cut_all()


UNSUPPORTED_FOR_MESSAGE_FORMAT = 43


def refusal_for_headers(frame: bytes) -> bytes | None:
    """For a Produce request carrying any record header, the response a broker whose topics keep a
    pre-0.11 message format gives (UNSUPPORTED_FOR_MESSAGE_FORMAT on every partition); else None."""
    from kafka.protocol.producer import ProduceRequest, ProduceResponse
    from kafka.record import MemoryRecords

    key, version, correlation_id = struct.unpack(">hhi", frame[4:12])
    if key != 0:
        return None
    request = ProduceRequest.decode(frame, version=version, header=True, framed=True)
    if request.acks == 0:
        return None
    has_headers = any(
        record.headers
        for topic in request.topic_data
        for partition in topic.partition_data
        for batch in MemoryRecords(bytes(partition.records or b""))
        for record in batch
    )
    if not has_headers:
        return None
    topic_response = ProduceResponse.TopicProduceResponse
    partition_response = topic_response.PartitionProduceResponse
    response = ProduceResponse[version](
        responses=[
            topic_response(
                name=topic.name,
                partition_responses=[
                    partition_response(
                        index=partition.index,
                        error_code=UNSUPPORTED_FOR_MESSAGE_FORMAT,
                        base_offset=-1,
                        log_append_time_ms=-1,
                        log_start_offset=-1,
                        record_errors=[],
                        error_message="Magic v1 does not support record headers",
                    )
                    for partition in topic.partition_data
                ],
            )
            for topic in request.topic_data
        ],
        throttle_time_ms=0,
    )
    response.with_header(correlation_id=correlation_id)
    return bytes(response.encode(header=True, framed=True))


def with_throttle(frame: bytes, key: int, version: int, throttle_ms: int) -> bytes:
    """A broker's Produce or Fetch response frame, re-encoded with ``throttle_time_ms`` set."""
    from kafka.protocol.consumer import FetchResponse
    from kafka.protocol.producer import ProduceResponse

    kind = {0: ProduceResponse, 1: FetchResponse}[key]
    response = kind.decode(frame, version=version, header=True, framed=True)
    response.throttle_time_ms = throttle_ms
    return bytes(response.encode(header=True, framed=True))
