"""kafka-python consumer hand-outs, per record batch: each partition's records tell a
:class:`~kafkahooks.hooks._handout.BatchCursor` when their iterator moves into a batch, and where
they stopped when drained (nothing per record)."""

from __future__ import annotations

from typing import Any

from kafkahooks._guard import internal_error
from kafkahooks._wire._shared import batch_entered, batch_finished
from kafkahooks.hooks._handout import BatchCursor, HandOutTracker


class _HandOutRecords:
    """kafka-python's ``MemoryRecords`` as one partition's record iterator walks it: the cursor
    hears when the iterator moves into a data batch (nothing per record)."""

    __slots__ = ("_cursor", "_records")

    def __init__(self, records: Any, cursor: BatchCursor) -> None:
        self._records = records
        self._cursor = cursor

    def next_batch(self, *args: Any, **kwargs: Any) -> Any:
        batch = self._records.next_batch(*args, **kwargs)
        batch_finished(self._cursor, "kafka_python.handout")
        batch_entered(self._cursor, batch, "kafka_python.handout")
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)


def observe_handouts(consumer: Any, tracker: HandOutTracker) -> None:
    """Report the records ``consumer`` hands out, per record batch, to ``tracker``.

    The fetcher builds a ``PartitionRecords`` per completed fetch through ``self.PartitionRecords``:
    this fetcher's gets a factory that gives the records a :class:`BatchCursor` and chains
    ``on_drain``, which kafka-python calls once, with the final position, when the records run
    out or are dropped (a seek, a rebalance, ``close()``).
    """
    fetcher = consumer._fetcher
    build = type(fetcher).PartitionRecords

    def partition_records(fetch_offset: Any, tp: Any, records: Any, **kwargs: Any) -> Any:
        try:
            cursor = tracker.cursor(tp.topic, tp.partition, fetch_offset)
            on_drain = kwargs.get("on_drain")

            def drained(part: Any) -> None:
                try:
                    cursor.abandoned(part.next_fetch_offset)
                except Exception as exc:
                    internal_error("kafka_python.handout", exc)
                if on_drain is not None:
                    on_drain(part)

            kwargs["on_drain"] = drained
            records = _HandOutRecords(records, cursor)
        except Exception as exc:
            internal_error("kafka_python.handout", exc)
        return build(fetch_offset, tp, records, **kwargs)

    fetcher.PartitionRecords = partition_records


def release_handouts(consumer: Any) -> None:
    """The consumer closed: drain the records it still held, so their cursors count what was
    handed out of batches left half-way (kafka-python's own close leaves them)."""
    try:
        consumer._fetcher.close()
    except Exception as exc:
        internal_error("kafka_python.release_handouts", exc)
