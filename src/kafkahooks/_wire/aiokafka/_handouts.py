"""aiokafka consumer hand-outs, per record batch: the fetcher's buffered results tell a
:class:`~kafkahooks.hooks._handout.BatchCursor` when their record iterator enters a batch and
moves on (nothing per record)."""

from __future__ import annotations

import collections
from typing import Any

from kafkahooks._guard import internal_error
from kafkahooks._wire._shared import batch_entered, batch_finished
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker


class _HandOutRecords:
    """aiokafka's ``MemoryRecords`` as one partition's record iterator walks it: the cursor hears
    when the iterator enters a data batch and when it asks for the next one (nothing per record)."""

    __slots__ = ("_cursor", "_records")

    def __init__(self, records: Any, cursor: BatchCursor) -> None:
        self._records = records
        self._cursor = cursor

    def has_next(self) -> Any:
        more = self._records.has_next()
        batch_finished(self._cursor, "aiokafka.handout")
        return more

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        batch_entered(self._cursor, batch, "aiokafka.handout")
        return batch

    def size_in_bytes(self) -> Any:
        return self._records.size_in_bytes()


class _HandOutFetchResults(collections.OrderedDict):  # type: ignore[type-arg]
    """The fetcher's buffered results (``Fetcher._records``): each new partition result's records
    get a :class:`BatchCursor`; a result dropped before it was used up (a seek, a rebalance,
    ``stop()``) tells its cursor where it stopped."""

    _kh_tracker: HandOutTracker
    _kh_open: dict[Any, tuple[Any, BatchCursor]]

    def __setitem__(self, tp: Any, result: Any) -> None:
        if tp in self._kh_open:
            self._kh_release(tp)
        records = getattr(result, "_partition_records", None)
        if records is not None:
            try:
                cursor = self._kh_tracker.cursor(tp.topic, tp.partition, records.next_fetch_offset)
                records._records = _HandOutRecords(records._records, cursor)
                self._kh_open[tp] = (records, cursor)
            except Exception as exc:
                internal_error("aiokafka.handout", exc)
        super().__setitem__(tp, result)

    def __delitem__(self, tp: Any) -> None:
        super().__delitem__(tp)
        if tp in self._kh_open:
            self._kh_release(tp)

    def clear(self) -> None:
        super().clear()
        self._kh_release_all()

    def _kh_release(self, tp: Any) -> None:
        records, cursor = self._kh_open.pop(tp)
        try:
            cursor.abandoned(records.next_fetch_offset)
        except Exception as exc:
            internal_error("aiokafka.handout", exc)

    def _kh_release_all(self) -> None:
        for tp in list(self._kh_open):
            self._kh_release(tp)


def observe_handouts(fetcher: Any, tracker: HandOutTracker) -> None:
    """Report the records this consumer's fetcher hands out, per record batch, to ``tracker``.

    Called right after ``start()`` created the fetcher: results already buffered by then have not
    been handed out (the application cannot consume before ``start()`` returns) and are adopted.
    """
    if isinstance(fetcher._records, _HandOutFetchResults):
        return
    results = _HandOutFetchResults()
    results._kh_tracker = tracker
    results._kh_open = {}
    for tp, result in fetcher._records.items():
        results[tp] = result
    fetcher._records = results


def release_handouts(fetcher: Any) -> None:
    """The consumer stopped: count what was handed out of batches left half-way."""
    results = getattr(fetcher, "_records", None)
    if isinstance(results, _HandOutFetchResults):
        results._kh_release_all()
