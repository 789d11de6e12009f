"""kafkahooks' own logging: structlog, snake_case events that state a fact, rate-limited.

structlog is imported when kafkahooks first logs, not when a wrapped client is imported: it loads
its development renderer, and with it rich and pygments when they are installed (66 modules and
some 8 000 objects the collector would walk for the life of a process that may never log).
"""

from __future__ import annotations

from typing import Any

from kafkahooks import _clock, _fork


class _Logger:
    """A structlog logger named after the module, made on its first use."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        logger = self._logger
        if logger is None:
            import structlog

            logger = self._logger = structlog.get_logger(self._name)
        return getattr(logger, method)


def get_logger(name: str) -> Any:
    """A structlog logger named after the module, so stdlib-logging integrations can route it."""
    return _Logger(name)


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
        self._lock = _fork.Lock()

    def log(self, level: str, limit_key: object, event: str, /, **fields: Any) -> bool:
        """Log ``event`` at ``level`` unless ``limit_key`` was logged within the interval."""
        now = _clock.monotonic_ns()
        with self._lock:
            last = self._last.get(limit_key)
            if last is not None and now - last < self._interval_ns:
                self._suppressed[limit_key] = self._suppressed.get(limit_key, 0) + 1
                return False
            self._last[limit_key] = now
            suppressed = self._suppressed.pop(limit_key, 0)
            if len(self._last) > 10_000:
                self._last.clear()
        getattr(self._logger, level)(event, suppressed=suppressed, **fields)
        return True

    def warning(self, limit_key: object, event: str, /, **fields: Any) -> bool:
        """Log ``event`` at warning level unless ``limit_key`` was logged within the interval."""
        return self.log("warning", limit_key, event, **fields)

    def info(self, limit_key: object, event: str, /, **fields: Any) -> bool:
        """Log ``event`` at info level unless ``limit_key`` was logged within the interval."""
        return self.log("info", limit_key, event, **fields)
