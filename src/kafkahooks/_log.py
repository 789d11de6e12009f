"""kafkahooks' own logging: structlog, snake_case events that state a fact, rate-limited."""

from __future__ import annotations

import threading
from typing import Any

import structlog

from kafkahooks import _clock


def get_logger(name: str) -> Any:
    """A structlog logger named after the module, so stdlib-logging integrations can route it."""
    return structlog.get_logger(name)


class RateLimitedLog:
    """Logs an event at most once per ``interval_s`` per key, reporting how many were suppressed.

    Safe across threads; the check costs one dict lookup when the event is suppressed.
    """

    __slots__ = ("_interval_ns", "_last", "_lock", "_logger", "_suppressed")

    def __init__(self, logger: Any, interval_s: float = 60.0) -> None:
        self._logger = logger
        self._interval_ns = int(interval_s * 1e9)
        self._last: dict[object, int] = {}
        self._suppressed: dict[object, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: object, event: str, **fields: Any) -> bool:
        """Log ``event`` at warning level unless ``key`` was logged within the interval."""
        now = _clock.monotonic_ns()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval_ns:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return False
            self._last[key] = now
            suppressed = self._suppressed.pop(key, 0)
        self._logger.warning(event, suppressed=suppressed, **fields)
        return True
