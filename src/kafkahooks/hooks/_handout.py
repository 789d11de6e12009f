"""Consumer hand-outs per record batch, for the hand-out events: no Python call per record.

Both clients hand records to the application from a per-partition iterator that walks the
fetched record batches one after the other (aiokafka's and kafka-python's ``PartitionRecords``).
The client adapters give each such iterator a :class:`BatchCursor`, told only when the iterator
moves into a batch and when it leaves it; whatever the consume API (``getmany``, ``poll``,
``getone``, ``async for``, iteration), the cost is a few calls per *batch*.

- **Entry** (the application's thread or task, just before the batch's first record is handed
  out): each hook's ``on_fetch_batch_entered`` sees the batch, as the connection's tap read it
  when the Fetch response arrived (pathway and trace headers of its first record, sizes,
  timestamp), and returns a token. Data streams compute the consume checkpoint here and make its
  context the current pathway (inside a ``getmany``/``poll`` call, the oldest of the call's
  batches, at the call's end: ``on_poll_ended``).
- **Exit**: the iterator moved to the next batch, ran out, or was abandoned (a seek, a rebalance,
  ``stop()``) at a known position. The records handed out of the batch are counted exactly from
  offsets, and one hand-out (a :data:`~kafkahooks.hooks._records.RawHandOut`, a
  :class:`HandOut` for plugins outside kafkahooks) goes to the :class:`~kafkahooks.hooks._requests.RequestLog`
  for the export worker (``on_batches_handed_out``).

A hook that raises here is counted and logged as any hook failure; its token is None and the
other hooks still run.

A batch the tap did not see (never expected; also legacy v0/v1 message sets) is handed out
without headers and counted in ``handouts_unattributed``. Batches fetched but never handed out
(the consumer seeked away) are forgotten, and counted, when the partition's table is full.
"""

from __future__ import annotations

import contextvars
from collections import OrderedDict
from typing import Any

from kafkahooks import _clock, _fork
from kafkahooks._selfstats import counter
from kafkahooks.hooks._records import (
    BASE_OFFSET,
    LAST_OFFSET,
    NUM_RECORDS,
    RawBatch,
    batch_info,
    position,
)
from kafkahooks.hooks._requests import RequestLog, implements

_unattributed = counter(
    "handouts_unattributed", "Record batches handed to the application that the consumer was not seen fetching"
)
_evicted = counter("fetched_batches_forgotten", "Fetched record batches forgotten before being handed out")

MAX_BATCHES_PER_PARTITION = 16_384
"""Fetched batches remembered per partition until they are handed out."""
MAX_PARTITIONS = 4_096
"""Partitions whose fetched batches are remembered (least recently fetched forgotten first)."""


class HandOutTracker:
    """One consumer's fetched batches and hand-out cursors (see the module docs)."""

    def __init__(self, log: RequestLog) -> None:
        self.log = log
        self.entering = log.entering
        """The hooks whose ``on_fetch_batch_entered`` sees each batch (a :class:`HandOut`'s
        ``entering``)."""
        self._enter = tuple(
            (p.on_fetch_batch_entered, bool(getattr(p, "kafkahooks_raw_batches", False))) for p in self.entering
        )
        """Each entering hook's method, and whether it reads a :data:`RawBatch` by position
        (``kafkahooks_raw_batches``: kafkahooks' own plugins), for which no :class:`BatchInfo`
        is built."""
        ended = (p for p in log.plugins if implements(p, "on_poll_ended"))
        self._poll_ended = tuple((position(self.entering, p), p.on_poll_ended) for p in ended)
        self.folds = log.folds
        """The folding hooks (:attr:`RequestLog.folds`), each hand-out's first stop."""
        self._fetched: OrderedDict[tuple[str, int], dict[int, RawBatch]] = OrderedDict()
        self._lock = _fork.Lock()
        self._scope: contextvars.ContextVar[list[tuple[Any, ...]] | None] = contextvars.ContextVar(
            "kafkahooks_handout_scope", default=None
        )

    # -- the I/O path: what the tap read --------------------------------------------------------

    def fetched(self, topic: str, partition: int, batches: list[RawBatch]) -> None:
        """Batches of one partition in a Fetch response, in order (the connection's I/O path)."""
        key = (topic, partition)
        with self._lock:
            table = self._fetched.get(key)
            if table is None:
                table = self._fetched[key] = {}
                if len(self._fetched) > MAX_PARTITIONS:
                    _, dropped = self._fetched.popitem(last=False)
                    _evicted.add(len(dropped))
            else:
                self._fetched.move_to_end(key)
            for batch in batches:
                table[batch[BASE_OFFSET]] = batch
            while len(table) > MAX_BATCHES_PER_PARTITION:
                try:
                    del table[next(iter(table))]
                except (KeyError, RuntimeError, StopIteration):  # handed out meanwhile (_take)
                    continue
                _evicted.add()

    def _take(self, topic: str, partition: int, base: int) -> RawBatch | None:
        # No lock: two single dict operations, each atomic; only fetched() (which holds the lock
        # against another fetched()) changes the tables otherwise, and it tolerates this pop.
        table = self._fetched.get((topic, partition))
        return table.pop(base, None) if table else None

    # -- the application's side -------------------------------------------------------------------

    def cursor(self, topic: str, partition: int, fetch_offset: int) -> BatchCursor:
        """A cursor for one new per-partition record iterator that starts at ``fetch_offset``."""
        return BatchCursor(self, topic, partition, fetch_offset)

    def begin_scope(self) -> contextvars.Token[list[tuple[Any, ...]] | None]:
        """A consume call that hands out lists (``getmany``, ``poll``) starts: plugins see its
        batches together at :meth:`end_scope`."""
        return self._scope.set([])

    def end_scope(self, token: contextvars.Token[list[tuple[Any, ...]] | None]) -> None:
        entered = self._scope.get()
        self._scope.reset(token)
        if entered:
            for i, ended in self._poll_ended:
                try:
                    ended([tokens[i] for tokens in entered] if i is not None else [None] * len(entered))
                except Exception as exc:
                    self.log.failed(ended, "on_poll_ended", exc)

    def _entered(self, topic: str, partition: int, batch: RawBatch) -> tuple[Any, ...]:
        collecting = self._scope.get()
        scoped = collecting is not None
        info = None
        made = []
        for enter, raw in self._enter:
            try:
                if raw:
                    made.append(enter(topic, partition, batch, scoped))
                else:
                    if info is None:
                        info = batch_info(batch)
                    made.append(enter(topic, partition, info, scoped))
            except Exception as exc:
                made.append(None)
                self.log.failed(enter, "on_fetch_batch_entered", exc)
        tokens = tuple(made)
        if collecting is not None:
            collecting.append(tokens)
        return tokens


class BatchCursor:
    """Follows one per-partition record iterator from batch to batch (see the module docs).

    ``position`` is the offset of the next record the iterator can hand out: the fetch offset at
    first, then each batch's next offset. Used by one thread or task at a time, like the iterator.
    """

    __slots__ = ("_batch", "_entered_ns", "_start", "_tokens", "partition", "position", "topic", "tracker")

    def __init__(self, tracker: HandOutTracker, topic: str, partition: int, fetch_offset: int) -> None:
        self.tracker = tracker
        self.topic = topic
        self.partition = partition
        self.position = fetch_offset
        self._batch: RawBatch | None = None
        self._start = 0
        self._tokens: tuple[Any, ...] = ()
        self._entered_ns = 0

    def entered(self, base_offset: int, next_offset: int, first_timestamp_ms: int) -> None:
        """The iterator is about to hand out the first records of a data batch."""
        if self._batch is not None:
            self.finished()
        tracker = self.tracker
        batch = tracker._take(self.topic, self.partition, base_offset)
        if batch is None:
            _unattributed.add()
            count = max(next_offset - base_offset, 0)
            batch = (count, -1, -1, 0, base_offset, next_offset - 1, first_timestamp_ms, None)
        self._start = max(self.position, base_offset)
        self._entered_ns = _clock.time_ns()
        self._tokens = tracker._entered(self.topic, self.partition, batch)
        self._batch = batch

    def finished(self) -> None:
        """The iterator handed out everything of the open batch (it moved on, or ran out)."""
        batch = self._batch
        if batch is None:
            return
        self._batch = None
        last = batch[LAST_OFFSET]
        self.position = last + 1
        if self._start <= batch[BASE_OFFSET]:
            count = batch[NUM_RECORDS]
        else:  # started inside the batch: the records from the fetch offset on
            count = min(last - self._start + 1, batch[NUM_RECORDS])
        self._emit(batch, count)

    def abandoned(self, position: int) -> None:
        """The iterator is dropped with ``position`` as the next offset it would have handed out."""
        batch = self._batch
        if batch is None:
            return
        if position > batch[LAST_OFFSET]:
            self.finished()
            return
        self._batch = None
        self.position = position
        self._emit(batch, min(max(position - self._start, 0), batch[NUM_RECORDS]))

    def _emit(self, batch: RawBatch, count: int) -> None:
        if count <= 0:
            return
        tracker = self.tracker
        log = tracker.log
        if tracker.folds and not log.sealed:
            # kafkahooks' own plugins add the hand-out to what they keep at once: nothing of it
            # waits for the worker (RequestLog.folds).
            tokens = self._tokens
            for i, fold in tracker.folds:
                try:
                    fold(self.topic, self.partition, count, self._entered_ns, batch, None if i is None else tokens[i])
                except Exception as exc:
                    log.failed(fold, "on_batches_handed_out", exc)
            if not log.queues_handouts:
                return
        # A RawHandOut: a plain tuple the collector untracks, not a HandOut (see there).
        log.offer_other((self.topic, self.partition, count, self._entered_ns, batch, *self._tokens))
