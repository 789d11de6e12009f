"""A bounded, thread-safe hand-off buffer that drops (and counts) instead of blocking."""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from kafkahooks import _fork
from kafkahooks._log import RateLimitedLog, get_logger

T = TypeVar("T")
_drop_log = RateLimitedLog(get_logger("kafkahooks.export"), 60.0)
_buffers: weakref.WeakSet[BoundedBuffer[object]] = weakref.WeakSet()


def buffers() -> list[BoundedBuffer[object]]:
    """Every live buffer in the process (for self-metrics)."""
    return list(_buffers)


class BoundedBuffer(Generic[T]):
    """Items offered on the I/O path, drained by the export worker.

    ``offer`` never blocks: when ``capacity`` items are waiting, the new item is dropped and
    ``dropped`` counts it, so every offered item is either drained or counted, exactly. Several
    threads offering at once may overshoot the capacity by at most one item each.
    """

    __slots__ = ("__weakref__", "_drop_lock", "_items", "_wake", "_wake_at", "accepted", "capacity", "dropped", "name")

    def __init__(self, name: str, capacity: int, wake: Callable[[], None] | None = None) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.name = name
        self.capacity = capacity
        self.dropped = 0
        """Items refused because the buffer was full (or closed)."""
        self.accepted = 0
        """Items drained so far (handed to the sink)."""
        self._items: deque[T] = deque()
        self._drop_lock = _fork.Lock()
        self._wake = wake
        self._wake_at = max(capacity // 2, 1)
        _buffers.add(self)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        """Queue ``item``; returns False (and counts a drop) when the buffer is full."""
        items = self._items
        size = len(items)
        if size >= self.capacity:
            with self._drop_lock:
                self.dropped += 1
                dropped = self.dropped
            _drop_log.warning(self.name, "telemetry_dropped", buffer=self.name, dropped=dropped, capacity=self.capacity)
            return False
        items.append(item)
        if size == self._wake_at and self._wake is not None:
            self._wake()
        return True

    def drain(self) -> list[T]:
        """Take everything queued so far (safe against concurrent ``offer``)."""
        items = self._items
        out: list[T] = []
        pop = items.popleft
        try:
            for _ in range(len(items)):
                out.append(pop())
        except IndexError:  # pragma: no cover - another drainer raced us
            pass
        self.accepted += len(out)
        return out

    def clear(self) -> None:
        """Forget queued items without counting them (used in a forked child)."""
        self._items.clear()
