"""A bounded, thread-safe hand-off buffer that drops (and counts) instead of blocking."""

from __future__ import annotations

import struct
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

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
            return self._refuse()
        items.append(item)
        if size == self._wake_at and self._wake is not None:
            self._wake()
        return True

    def _refuse(self) -> bool:
        """Count (and log, rate-limited) one item dropped; always False, for ``offer`` to return."""
        with self._drop_lock:
            self.dropped += 1
            dropped = self.dropped
        _drop_log.warning(self.name, "telemetry_dropped", buffer=self.name, dropped=dropped, capacity=self.capacity)
        return False

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


class ByteBudget:
    """Estimated bytes a client's buffers may hold, shared by them: items are counted from when
    they are offered until the export worker has finished with them (so what a stuck pass holds
    counts too). Updated without a lock: concurrent offers may drift the count by an item."""

    __slots__ = ("half", "limit", "used")

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.half = limit // 2
        self.used = 0

    def release(self, weight: int) -> None:
        """The worker is done with items that weighed ``weight``."""
        used = self.used - weight
        self.used = used if used > 0 else 0


class WeighedBuffer(BoundedBuffer[T]):
    """A :class:`BoundedBuffer` also bounded in estimated bytes: ``weigh(item)`` is charged to a
    :class:`ByteBudget` when an item is offered, and an item that finds the budget spent is
    dropped and counted like one past ``capacity``. :meth:`drain_weighed` hands the weight of what
    it took to the caller, who releases it once done."""

    __slots__ = ("_held", "_weigh", "_woke", "budget")

    def __init__(
        self,
        name: str,
        capacity: int,
        budget: ByteBudget,
        weigh: Callable[[T], int],
        wake: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name, capacity, wake)
        self.budget = budget
        self._weigh = weigh
        self._held = 0
        self._woke = False

    def offer(self, item: T) -> bool:
        """Queue ``item``; returns False (and counts a drop) when the buffer is full or the item
        would take its budget past the limit (weighed first: one Fetch response's entry can weigh
        megabytes, so a check of the budget alone let the last one in overshoot by that much)."""
        items = self._items
        size = len(items)
        budget = self.budget
        if size >= self.capacity:
            return self._refuse()
        weight = self._weigh(item)
        if budget.used + weight > budget.limit:
            return self._refuse()
        self._held += weight
        budget.used += weight
        items.append(item)
        if self._wake is not None and (size == self._wake_at or (budget.used >= budget.half and not self._woke)):
            self._woke = True
            self._wake()
        return True

    def drain_weighed(self) -> tuple[list[T], int]:
        """Take everything queued so far and its weight, still charged to the budget: the caller
        releases it (:meth:`ByteBudget.release`) when done with the items."""
        held, self._held = self._held, 0
        self._woke = False
        return super().drain(), held

    def drain(self) -> list[T]:
        """Take everything queued so far and release its weight at once."""
        items, held = self.drain_weighed()
        self.budget.release(held)
        return items

    def clear(self) -> None:
        super().clear()
        held, self._held = self._held, 0
        self.budget.release(held)


class PackedBuffer(BoundedBuffer[tuple[Any, ...]]):
    """A :class:`BoundedBuffer` of rows of one fixed shape, ``(ref, number, number, ...)``, kept
    as raw bytes (the numbers, packed by ``fmt``, a :mod:`struct` format) and one reference each
    (``ref``, an object its caller keeps anyway, such as a cached tuple of tags): an offered row
    leaves no object of its own on the heap until the worker drains it.

    Why: a consumer offers a row per record batch handed out, in the middle of the client's own
    records, and they wait for the export worker's pass, up to half a second. Each waiting tuple
    and number was a small block of CPython's allocator among the records' blocks, and kept its
    pool from emptying when the records were freed; the client's next records were then served
    from those pools' free lists, one cold block after another, where an emptied pool serves them
    fresh. On aiokafka ``getmany`` that made the client's own allocations 60% slower (benchmarks/NOTES.md, *A
    consumer's batches in the allocator*). ``drain`` unpacks the rows on the worker.

    A row whose numbers ``fmt`` cannot hold is refused and counted like one past ``capacity``.
    """

    __slots__ = ("_lock", "_refs", "_row", "_rows")

    def __init__(self, name: str, capacity: int, fmt: str, wake: Callable[[], None] | None = None) -> None:
        super().__init__(name, capacity, wake)
        self._row = struct.Struct(fmt)
        self._rows = bytearray()
        self._refs: list[Any] = []
        self._lock = _fork.Lock()

    def __len__(self) -> int:
        return len(self._refs)

    def offer(self, item: tuple[Any, ...]) -> bool:
        """Queue the row ``(ref, *numbers)``; False (counted) when full or not of ``fmt``'s shape."""
        return self.offer_row(item[0], *item[1:])

    def offer_row(self, ref: Any, *numbers: Any) -> bool:
        """Queue one row; False (counted) when the buffer is full or a number does not fit."""
        try:
            packed = self._row.pack(*numbers)
        except (struct.error, TypeError, OverflowError):
            return self._refuse()
        with self._lock:
            refs = self._refs
            size = len(refs)
            full = size >= self.capacity
            if not full:
                self._rows += packed
                refs.append(ref)
        if full:  # counted and logged outside the lock the application's thread shares
            return self._refuse()
        if size == self._wake_at and self._wake is not None:
            self._wake()
        return True

    def drain(self) -> list[tuple[Any, ...]]:
        """Every row queued so far, as ``(ref, *numbers)`` tuples, in order."""
        with self._lock:
            rows, refs = self._rows, self._refs
            self._rows = bytearray()
            self._refs = []
        out = [(ref, *numbers) for ref, numbers in zip(refs, self._row.iter_unpack(rows), strict=True)]
        self.accepted += len(out)
        return out

    def clear(self) -> None:
        with self._lock:
            self._rows = bytearray()
            self._refs = []
