"""What a plugin noted as a producer batch opened, found again when the batch's request finishes.

A producer batch is known by its topic, partition and first record's timestamp. The wire layer
stamps the record that opens a batch before it asks the header injectors (with the time the
client's own builder would have given it, when the application gave none), and the batch header
the client then writes carries the same value (``baseTimestamp``), which the connection's tap reads
from the Produce request for free. So a plugin that injected a header need not read it back from
the batch's bytes to know which batch it was: no copy of the first record on the I/O path, no
parse of it on the export worker.

Several open batches can share a key (a batch that fills within a millisecond, or an application
that stamps its records itself): their values queue under it, first opened first taken, as the
client acknowledges a partition's batches in order. A batch that never finishes (expired,
refused) leaves its value behind: the table keeps at most ``limit`` keys, and what it must evict is
counted in ``opened_batches_evicted``.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from kafkahooks import _fork
from kafkahooks._selfstats import counter

T = TypeVar("T")

MAX_OPENED = 4096
"""Keys kept per table: far beyond the batches a producer has in flight."""
MAX_SAME_KEY = 64
"""Values queued under one key; older ones are evicted (and counted)."""

_evicted = counter(
    "opened_batches_evicted", "Values noted for producer batches that were evicted before their batch finished"
)


class _Queued(list):  # type: ignore[type-arg]
    """Values of several open batches under one key, oldest first (a list no value can be)."""

    __slots__ = ()


class OpenedBatches(Generic[T]):
    """A bounded table from (topic, partition, first timestamp ms) to what was noted at opening.

    :meth:`add` runs on the application's thread or task as a batch opens, :meth:`take` and
    :meth:`get` on the export worker. Adding a new key takes no lock (it runs on the client's
    I/O path); every other change holds the table's lock.
    """

    __slots__ = ("_lock", "_table", "limit")

    def __init__(self, limit: int = MAX_OPENED) -> None:
        self.limit = limit
        self._table: dict[tuple[str, int, int], T | _Queued] = {}
        self._lock = _fork.Lock()

    def __len__(self) -> int:
        return len(self._table)

    def add(self, topic: str, partition: int, timestamp_ms: int, value: T) -> None:
        """Note ``value`` for the batch that just opened with this first timestamp."""
        key = (topic, partition, timestamp_ms)
        table = self._table
        if key not in table:
            # The common case, without the lock: one dict store (atomic under the GIL; only this
            # side adds keys, the worker removes them). Two threads opening a batch of the same
            # partition in the same millisecond could both get here: one value would be lost.
            table[key] = value
            if len(table) > self.limit:
                self._evict()
            return
        with self._lock:
            prior = table.get(key)  # the worker may have taken it meanwhile
            if prior is None:
                table[key] = value
            elif type(prior) is _Queued:
                prior.append(value)
                if len(prior) > MAX_SAME_KEY:
                    del prior[0]
                    _evicted.add()
            else:
                table[key] = _Queued((prior, value))

    def _evict(self) -> None:
        with self._lock:
            table = self._table
            while len(table) > self.limit:
                try:
                    oldest = table.pop(next(iter(table)))
                except (StopIteration, RuntimeError):  # pragma: no cover - emptied meanwhile
                    return
                _evicted.add(len(oldest) if type(oldest) is _Queued else 1)

    def take(self, topic: str, partition: int, timestamp_ms: int) -> T | None:
        """The oldest value noted under this key, removed; None if there is none."""
        key = (topic, partition, timestamp_ms)
        with self._lock:
            table = self._table
            found = table.get(key)
            if type(found) is _Queued:  # changed in place: the key stays, so no add can slip in
                first = found.pop(0)
                if len(found) == 1:
                    table[key] = found[0]
                return first  # type: ignore[no-any-return]
            if found is not None:
                del table[key]
        return found  # type: ignore[return-value]

    def get(self, topic: str, partition: int, timestamp_ms: int) -> T | None:
        """The oldest value noted under this key, left in place (a request that failed: its batch
        will be sent again)."""
        found = self._table.get((topic, partition, timestamp_ms))
        if type(found) is _Queued:
            try:
                return found[0]  # type: ignore[no-any-return]
            except IndexError:  # pragma: no cover - emptied by a take on another thread
                return None
        return found  # type: ignore[return-value]
