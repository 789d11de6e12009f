"""aiokafka consumer hand-outs, per record batch: the fetcher's buffered results tell a
:class:`~kafkahooks.hooks._handout.BatchCursor` when their record iterator enters a batch and
moves on (nothing per record)."""

from __future__ import annotations

import weakref
from typing import Any

from kafkahooks._guard import internal_error
from kafkahooks._wire._shared import batch_entered, batch_finished
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker


class _HandOutRecords:
    """aiokafka's ``MemoryRecords`` as one partition's record iterator walks it: the cursor hears
    when the iterator enters a data batch and when it asks for the next one (nothing per record)."""

    __slots__ = ("_cursor", "_owner", "_records", "_tp")

    def __init__(self, records: Any, cursor: BatchCursor, owner: _HandOuts, tp: Any) -> None:
        self._records = records
        self._cursor = cursor
        self._owner: _HandOuts | None = owner  # None once the records ran out
        self._tp = tp

    def has_next(self) -> Any:
        more = self._records.has_next()
        batch_finished(self._cursor, "aiokafka.handout")
        owner = self._owner
        if not more and owner is not None:  # used up: nothing left to count, let go of it now
            self._owner = None
            try:
                owner.used_up(self._tp, self)
            except Exception as exc:
                internal_error("aiokafka.handout", exc)
        return more

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        batch_entered(self._cursor, batch, "aiokafka.handout")
        return batch

    def size_in_bytes(self) -> Any:
        return self._records.size_in_bytes()


class _HandOuts:
    """One consumer's fetch results as its application takes them: each new partition result's
    records get a :class:`BatchCursor`; a result dropped before it was used up (a seek, a
    rebalance, ``stop()``) tells its cursor where it stopped.

    aiokafka's ``Fetcher._records`` stays the fetcher's own ``OrderedDict``: ``next_record`` reads
    it twice per record (``list(self._records.keys())`` and ``self._records[tp]``), and on a Python
    subclass of a dict CPython sends both through its generic slots (``[]`` becomes a method call,
    as dict's ``__getitem__`` is a method, not a slot wrapper): a cost on every record of
    ``async for``. Instead the mapping is compared with what was seen (:meth:`sync`) after each
    fetch response is processed (the fetcher's ``_proc_fetch_request``, which stores new results
    and awaits nothing after, so no record is handed out before its cursor is set) and when the
    consumer stops. A dropped result is noticed then, not at once: its records object keeps the
    offset where it stopped, so the count is the same. A result used up to its end is let go of at
    once (:meth:`used_up`), so a consumer holds no more fetched data than aiokafka does.
    """

    __slots__ = ("_fetcher", "_open", "_tracker")

    def __init__(self, fetcher: Any, tracker: HandOutTracker) -> None:
        self._fetcher = weakref.ref(fetcher)
        self._tracker = tracker
        self._open: dict[Any, tuple[Any, Any, BatchCursor]] = {}

    def sync(self) -> None:
        fetcher = self._fetcher()
        if fetcher is None:
            return
        results = fetcher._records
        opened = self._open
        for tp, (result, records, cursor) in list(opened.items()) if opened else ():
            if results.get(tp) is not result:  # dropped, or replaced by a newer result
                del opened[tp]
                _abandon(records, cursor)
        for tp, result in results.items():
            if tp in opened:
                continue
            records = getattr(result, "_partition_records", None)  # None for a FetchError
            if records is None or type(records._records) is _HandOutRecords:
                continue
            cursor = self._tracker.cursor(tp.topic, tp.partition, records.next_fetch_offset)
            records._records = _HandOutRecords(records._records, cursor, self, tp)
            opened[tp] = (result, records, cursor)

    def used_up(self, tp: Any, wrapper: _HandOutRecords) -> None:
        """``wrapper``'s records ran out: every batch is counted, so forget the result."""
        entry = self._open.get(tp)
        if entry is not None and entry[1]._records is wrapper:
            del self._open[tp]

    def release_all(self) -> None:
        self.sync()
        opened, self._open = self._open, {}
        for _, records, cursor in opened.values():
            _abandon(records, cursor)


def _abandon(records: Any, cursor: BatchCursor) -> None:
    try:
        cursor.abandoned(records.next_fetch_offset)
    except Exception as exc:
        internal_error("aiokafka.handout", exc)


def observe_handouts(fetcher: Any, tracker: HandOutTracker) -> None:
    """Report the records this consumer's fetcher hands out, per record batch, to ``tracker``.

    Called right after ``start()`` created the fetcher: results already buffered by then have not
    been handed out (the application cannot consume before ``start()`` returns) and are adopted.
    The fetcher gets one instance attribute, ``_proc_fetch_request`` (called once per Fetch
    response, never per record), and ``_kh_handouts``.
    """
    if getattr(fetcher, "_kh_handouts", None) is not None:
        return
    handouts = _HandOuts(fetcher, tracker)
    original = fetcher._proc_fetch_request

    async def _proc_fetch_request(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            try:
                handouts.sync()
            except Exception as exc:
                internal_error("aiokafka.handout", exc)

    fetcher._kh_handouts = handouts
    fetcher._proc_fetch_request = _proc_fetch_request
    handouts.sync()


def release_handouts(fetcher: Any) -> None:
    """The consumer stopped: count what was handed out of batches left half-way."""
    handouts = getattr(fetcher, "_kh_handouts", None)
    if handouts is not None:
        try:
            handouts.release_all()
        except Exception as exc:
            internal_error("aiokafka.release_handouts", exc)
