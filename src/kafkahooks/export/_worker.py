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
        """Drain the buffer and handle what was in it. Called only from the worker thread."""

    def forget(self) -> None:
        """Drop queued items without processing them (after ``fork()``, in the child)."""


STUCK_GLANCE_S = 0.1
"""How long a flush waits on a pass an earlier flush already gave up on."""


class ExportWorker:
    """Drains registered sinks every ``interval_s`` on one daemon thread.

    Sinks run on that thread only, never on a client's: an exporter that hangs holds up the worker,
    and a :meth:`flush` (from a client's ``close()``, say) waits at most its timeout for the worker
    to finish a pass, then gives up; what cannot be queued meanwhile is dropped and counted by the
    buffers. Once a flush has given up on a pass, later flushes return at once for as long as that
    same pass runs (:attr:`stuck`): eight clients closing one after the other wait one timeout, not
    eight. Sink failures are counted per sink (``failures``) and logged rate-limited.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.failures: dict[str, int] = {}
        self._sinks: weakref.WeakSet[Sink] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._requested = 0
        """Passes asked for by :meth:`flush`, numbered."""
        self._completed = 0
        """The highest-numbered request a finished pass started after."""
        self._closing = False
        self._closed_sinks = False
        self._passes = 0
        """Passes started so far."""
        self._pass_started = 0.0
        """When the running pass started (monotonic seconds), or 0 between passes."""
        self._stuck_pass = 0
        """The pass a flush gave up waiting for, while it still runs."""
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
            with self._done:
                serving, closing = self._requested, self._closing
                self._passes += 1
                self._pass_started = time.monotonic()
            self.run_once()
            if closing and not self._closed_sinks:
                self._closed_sinks = True
                self._close_sinks()
            with self._done:
                self._completed = max(self._completed, serving)
                self._pass_started = 0.0
                if self._stuck_pass == self._passes:
                    self._stuck_pass = 0
                    self._log.warning("stuck", "export_worker_recovered", passes=self._passes)
                self._done.notify_all()

    def run_once(self) -> None:
        """Process every sink once. Called on the worker thread only."""
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink.process()
            except Exception as exc:
                self._failed(sink.name, exc)

    def _failed(self, name: str, exc: Exception) -> None:
        self.failures[name] = self.failures.get(name, 0) + 1
        _sink_failures.add()
        self._log.warning(name, "export_failed", sink=name, error_type=type(exc).__qualname__, error=repr(exc)[:200])

    def _close_sinks(self) -> None:
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            close = getattr(sink, "close", None)
            if close is not None:
                try:
                    close()
                except Exception as exc:
                    self._failed(sink.name, exc)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Have the worker process everything queued so far; False if that took over ``timeout_s``
        (an exporter is slow or hung: the caller is never the one left waiting on it)."""
        if threading.current_thread() is self._thread:
            return False  # an exporter flushing from inside a pass: a nested pass could deadlock
        with self._lock:
            if not self._sinks:
                return True  # nothing registered, nothing queued: no thread to start or wait for
        with self._done:
            # A flush already timed out on this very pass (an exporter hangs): waiting again
            # would only make every close() wait its full timeout, one after the other. A glance,
            # in case the exporter has just come back.
            if self.stuck and not self._done.wait_for(lambda: not self.stuck, min(timeout_s, STUCK_GLANCE_S)):
                return False
            self._requested += 1
            target = self._requested
        with self._lock:
            self._ensure_thread()
        self._wake.set()
        with self._done:
            done = self._done.wait_for(lambda: self._completed >= target, max(timeout_s, 0.0))
            if not done and self._pass_started:
                self._stuck_pass = self._passes
                self._log.warning("stuck", "export_worker_stuck", waited_s=timeout_s)
            return done

    @property
    def passes(self) -> int:
        """Passes started so far (each drains every sink once)."""
        return self._passes

    @property
    def stuck(self) -> bool:
        """Whether a flush gave up on the pass still running (an exporter hangs)."""
        return bool(self._stuck_pass) and self._stuck_pass == self._passes

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """A final pass that also closes the sinks (exporting open buckets), then stop the thread;
        waits at most ``timeout_s`` in all. False if the worker did not finish in time."""
        started = time.monotonic()
        with self._done:
            self._closing = True
        done = self.flush(timeout_s)
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout_s - (time.monotonic() - started)))
        return done

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here and its locks may be held: start afresh.
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._completed = self._requested
        self._pass_started = 0.0
        self._stuck_pass = 0
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
