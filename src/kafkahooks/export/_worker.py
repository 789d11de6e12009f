"""The process-wide export worker."""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from typing import Protocol

from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter

_logger = get_logger(__name__)
_sink_failures = counter("export_failures", "Export passes that raised (spans, checkpoints, metrics)")


class Sink(Protocol):
    """Something the worker drains: it owns a buffer and knows what to do with its items."""

    name: str

    def process(self) -> None:
        """Drain the buffer and handle what was in it. Called only from the worker thread (or at
        shutdown and explicit flushes, serialised with it)."""

    def forget(self) -> None:
        """Drop queued items without processing them (after ``fork()``, in the child)."""


class ExportWorker:
    """Drains registered sinks every ``interval_s`` on one daemon thread.

    Sink failures are counted per sink (``failures``) and logged rate-limited; the thread keeps
    going. :meth:`flush` processes everything queued so far and waits (bounded) for it.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.failures: dict[str, int] = {}
        self._sinks: weakref.WeakSet[Sink] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._log = RateLimitedLog(_logger, 60.0)

    def register(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.add(sink)
            self._ensure_thread()

    def unregister(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.discard(sink)

    def wake(self) -> None:
        """Ask for an early pass (a buffer is filling up)."""
        self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._loop, name="kafkahooks-export", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.run_once()

    def run_once(self) -> None:
        """Process every sink once (serialised with the worker thread)."""
        with self._lock:
            sinks = list(self._sinks)
        with self._run_lock:
            for sink in sinks:
                try:
                    sink.process()
                except Exception as exc:
                    self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
                    _sink_failures.add()
                    self._log.warning(
                        sink.name,
                        "export_failed",
                        sink=sink.name,
                        error_type=type(exc).__qualname__,
                        error=repr(exc)[:200],
                    )

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Process everything queued so far; False if the worker was busy past ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while not self._run_lock.acquire(timeout=0.05):
            if time.monotonic() > deadline:
                return False
        self._run_lock.release()
        self.run_once()
        return True

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Final flush, then stop the thread (waiting at most ``timeout_s`` in all)."""
        started = time.monotonic()
        self.flush(timeout_s)
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
                    self._log.warning(sink.name, "export_failed", sink=sink.name, error=repr(exc)[:200])
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout_s - (time.monotonic() - started)))

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its locks may be held: start afresh.
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        for sink in list(self._sinks):
            sink.forget()
        if len(self._sinks):
            self._ensure_thread()


_worker = ExportWorker()


def worker() -> ExportWorker:
    """The process's export worker."""
    return _worker


def flush(timeout_s: float = 5.0) -> bool:
    """Process everything kafkahooks has queued for export (spans, checkpoints), within ``timeout_s``."""
    return _worker.flush(timeout_s)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_worker._after_fork_in_child)
atexit.register(_worker.shutdown, 2.0)
