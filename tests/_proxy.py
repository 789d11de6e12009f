"""A loopback TCP proxy that splits both directions into Kafka frames and records them.

Put it in front of a broker that advertises the proxy's port, and every byte a client exchanges
with the broker is seen here: an independent account of frame sizes and request keys to check
the hooks against, and a way to cut connections on demand.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
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

    def __init__(self, target_port: int, port: int = 0) -> None:
        self.target_port = target_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self.connections: list[ProxiedConnection] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stopped = False
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
            record = ProxiedConnection()
            with self._lock:
                self.connections.append(record)
                self._socks += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, record), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket, record: ProxiedConnection) -> None:
        up, down = _FrameSplitter(), _FrameSplitter()
        pending_keys: list[int] = []
        try:
            while True:
                readable, _, _ = select.select([client, upstream], [], [], 0.5)
                if self._stopped:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        for frame in up.feed(data):
                            key = struct.unpack(">h", frame[4:6])[0]
                            pending_keys.append(key)
                            with self._lock:
                                record.requests.append((key, len(frame)))
                        upstream.sendall(data)
                    else:
                        for frame in down.feed(data):
                            key = pending_keys.pop(0) if pending_keys else -1
                            with self._lock:
                                record.responses.append((key, len(frame)))
                        client.sendall(data)
        except OSError:
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
