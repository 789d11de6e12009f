"""The data-stream hooks a wrapped client installs: checkpoints per batch, not per record.

Producer: when a record opens a producer batch (``inject_batch_headers``, in the application's
thread or task), the checkpoint is computed against the current pathway (the one this thread or
task consumed last, or none: an origin) and, in ``header_mode="batch"``, its context is written
on that first record. When the broker acknowledges the batch (``on_produce_batch_written``), the
checkpoint is recorded once, weighted by the batch's record count, and the produced offset is
noted for lag. Fan-out: producing never changes the current pathway, so every produce after a
consume continues the consumed pathway, not the previous produce's.

Consumer: every fetched record batch is remembered with its offset range and the pathway context
on its first record (``on_fetch_batch_read``). When records are handed to the application
(``on_records_polled``), they are grouped by the producer batch they came from, however the poll
lists were cut, and each group makes one checkpoint weighted by its size. The current pathway
becomes the merge (oldest origin) of those groups' outgoing contexts, so a service that consumes
and then produces continues the pathway without code. A group whose batch carried no pathway
(a producer without kafkahooks or with ``header_mode="off"``, a first record removed by
compaction) starts a new pathway at the batch's first timestamp.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict, deque
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from kafkahooks import _clock
from kafkahooks._identity import ClientIdentity
from kafkahooks.datastreams._current import current_pathway, merge_contexts, set_pathway
from kafkahooks.datastreams._pathway import HEADER, LEGACY_HEADER, PathwayContext, from_headers
from kafkahooks.datastreams._streams import DataStreams
from kafkahooks.hooks import BrokerMeta, FetchBatchMetrics, ProduceBatchMetrics, ProduceRecord

_offset = attrgetter("offset")
_MISSING: Any = object()
_MAX_PENDING = 4096
_MAX_RANGES = 512

# (edge tags, outgoing context, parent hash, edge ms, pathway ms, at ns)
_Pending = tuple[tuple[str, ...], PathwayContext, int, int, int, int]


class _Partition:
    __slots__ = ("handed_until", "last_seen", "ranges")

    def __init__(self) -> None:
        # (base offset, last offset, pathway or None, first timestamp ms, payload bytes per record)
        self.ranges: deque[tuple[int, int, PathwayContext | None, int, float]] = deque(maxlen=_MAX_RANGES)
        self.handed_until = -1
        self.last_seen = -1


def _has_pathway(headers: Any) -> bool:
    try:
        return any(item[0] in (HEADER, LEGACY_HEADER) for item in headers or ())
    except Exception:
        return False


def _payload_per_record(metrics: ProduceBatchMetrics | FetchBatchMetrics) -> float:
    size = metrics.uncompressed_bytes if metrics.uncompressed_bytes >= 0 else metrics.compressed_bytes
    return size / metrics.num_records if metrics.num_records else 0.0


class DataStreamHooks:
    """Per-batch data-stream checkpoints for one wrapped client (see the module docs)."""

    kafkahooks_inline = True
    """Only queues work for the export worker: called directly, never timed or offloaded."""

    batch_header_keys = frozenset({HEADER, LEGACY_HEADER})

    def __init__(self, streams: DataStreams, identity: ClientIdentity | None = None) -> None:
        self.streams = streams
        self.identity = identity or ClientIdentity()
        self._lock = threading.Lock()
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._unheaded: dict[tuple[str, int], deque[_Pending]] = {}
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self._decoded: dict[bytes | str, PathwayContext | None] = {}
        self._backlog_tags: dict[tuple[str, int], tuple[str, ...]] = {}

    # -- producer ---------------------------------------------------------------------------------

    def _produce_checkpoint(self, topic: str) -> _Pending:
        streams = self.streams
        tags = streams.produce_tags(topic)
        parent = current_pathway()
        now_ns = _clock.time_ns()
        ctx, edge_ms, pathway_ms = streams.compute(tags, parent, now_ns // 1_000_000)
        return (tags, ctx, parent.hash if parent else 0, edge_ms, pathway_ms, now_ns)

    def inject_batch_headers(self, topic: str, partition: int, headers: Any) -> list[tuple[str, bytes]] | None:
        """Compute the batch's produce checkpoint and (batch mode) carry its context on this record."""
        if _has_pathway(headers):
            return None  # the application's own pathway header wins
        pending = self._produce_checkpoint(topic)
        if self.streams.header_mode == "off":
            with self._lock:
                queue = self._unheaded.setdefault((topic, partition), deque(maxlen=_MAX_PENDING))
                queue.append(pending)
            return None
        value = pending[1].encode_b64()
        self._remember(value, pending)
        return None if self.streams.header_mode == "record" else [(HEADER, value)]

    def _remember(self, value: bytes, pending: _Pending) -> None:
        with self._lock:
            self._pending[value] = pending
            if len(self._pending) > _MAX_PENDING:
                self._pending.popitem(last=False)

    def on_produce_batch_written(self, meta: BrokerMeta, topic: str, partition: int, m: ProduceBatchMetrics) -> None:
        value = next((v for k, v in m.headers if k == HEADER), None)
        with self._lock:
            if value is not None:
                pending = self._pending.get(value)
            else:
                queue = self._unheaded.get((topic, partition))
                pending = queue.popleft() if queue else None
        if pending is not None:
            tags, ctx, parent_hash, edge_ms, pathway_ms, at_ns = pending
            self.streams.record(
                tags,
                ctx,
                parent_hash,
                edge_ms,
                pathway_ms,
                weight=m.num_records,
                payload_bytes=_payload_per_record(m),
                at_ns=at_ns,
            )
        if m.base_offset >= 0:
            backlog = self._backlog_tags.get((topic, partition))
            if backlog is None:
                backlog = self._backlog_tags[(topic, partition)] = (
                    f"partition:{partition}",
                    f"topic:{topic}",
                    "type:kafka_produce",
                )
            self.streams.backlog(backlog, m.base_offset + m.num_records - 1)

    # -- consumer ---------------------------------------------------------------------------------

    def on_offsets_committed(self, group: str, topic: str, partition: int, offset: int) -> None:
        """The committed offset, for lag (Datadog's ``type:kafka_commit`` backlog)."""
        self.streams.backlog(
            (f"consumer_group:{group}", f"partition:{partition}", f"topic:{topic}", "type:kafka_commit"), offset
        )

    def _decode(self, headers: Any) -> PathwayContext | None:
        value = next((v for k, v in headers if k in (HEADER, LEGACY_HEADER)), _MISSING)
        if value is _MISSING:
            return None
        if not isinstance(value, (bytes, str)):
            return from_headers(headers)  # malformed: decoded (and counted) every time
        if value in self._decoded:
            return self._decoded[value]
        ctx = from_headers(headers)
        if len(self._decoded) > _MAX_PENDING:
            self._decoded.clear()
        self._decoded[value] = ctx
        return ctx

    def on_fetch_batch_read(self, meta: BrokerMeta, topic: str, partition: int, m: FetchBatchMetrics) -> None:
        ctx = self._decode(m.headers) if m.headers else None
        entry = (m.base_offset, m.last_offset, ctx, m.first_timestamp_ms, _payload_per_record(m))
        with self._lock:
            state = self._partitions.get((topic, partition))
            if state is None:
                state = self._partitions[(topic, partition)] = _Partition()
            ranges = state.ranges
            if not ranges or ranges[-1][0] < m.base_offset:
                ranges.append(entry)
            elif all(r[0] != m.base_offset for r in ranges):
                # A batch fetched again after a seek back: keep the ranges sorted.
                ranges.append(entry)
                state.ranges = deque(sorted(ranges, key=lambda r: r[0]), maxlen=_MAX_RANGES)

    def on_records_polled(self, topic: str, partition: int, records: Sequence[Any]) -> None:
        """Records of one partition were handed to the application: one checkpoint per producer batch."""
        if not records:
            return
        first, last = records[0].offset, records[-1].offset
        state = self._partitions.get((topic, partition))
        if state is not None and state.last_seen < first and last <= state.handed_until:
            # The per-record path (getone / async for) inside a batch already checkpointed. A
            # partition's records are handed out by one consumer at a time, so no lock is needed.
            state.last_seen = last
            return
        groups: list[tuple[PathwayContext | None, int, float, int]] = []
        with self._lock:
            state = self._partitions.get((topic, partition))
            if state is None:
                state = self._partitions[(topic, partition)] = _Partition()
            if first <= state.last_seen:
                state.handed_until = first - 1  # offsets went back (a seek): these are new hand-outs
            state.last_seen = last
            if last <= state.handed_until:
                return  # one record of a batch already checkpointed (getone / iteration)
            single = len(records) == 1
            low = max(first, state.handed_until + 1)
            for base, batch_last, ctx, first_ts, payload in state.ranges:
                if batch_last < low:
                    continue
                if base > last:
                    break
                lo, hi = max(base, low), min(batch_last, last)
                if single:
                    # Assume the rest of this batch follows one record at a time: count it now.
                    count, handed = batch_last - lo + 1, batch_last
                else:
                    count = bisect_right(records, hi, key=_offset) - bisect_left(records, lo, key=_offset)
                    handed = hi
                if count > 0:
                    groups.append((ctx, first_ts, payload, count))
                state.handed_until = handed
                low = batch_last + 1
            if low <= last:
                # Records from batches this consumer did not see fetched (should not happen): a new pathway.
                start = bisect_left(records, low, key=_offset)
                if start < len(records):
                    groups.append((None, records[start].timestamp, 0.0, len(records) - start))
                    state.handed_until = last
            while len(state.ranges) > 16 and state.ranges[0][1] < state.handed_until:
                state.ranges.popleft()
        self._checkpoint_consumed(topic, groups)

    def _checkpoint_consumed(self, topic: str, groups: list[tuple[PathwayContext | None, int, float, int]]) -> None:
        if not groups:
            return
        streams = self.streams
        tags = streams.consume_tags(topic, self.identity.group_id)
        now_ns = _clock.time_ns()
        now_ms = now_ns // 1_000_000
        outgoing = []
        for parent, first_ts, payload, count in groups:
            ctx, edge_ms, pathway_ms = streams.compute(tags, parent, now_ms, None if parent else first_ts)
            streams.record(
                tags,
                ctx,
                parent.hash if parent else 0,
                edge_ms,
                pathway_ms,
                weight=count,
                payload_bytes=payload,
                at_ns=now_ns,
            )
            outgoing.append(ctx)
        set_pathway(outgoing[0] if len(outgoing) == 1 else merge_contexts(*outgoing))


class RecordHeaderDataStreamHooks(DataStreamHooks):
    """``header_mode="record"``: the pathway header on every record (cached per topic, parent and ms)."""

    def __init__(self, streams: DataStreams, identity: ClientIdentity | None = None) -> None:
        super().__init__(streams, identity)
        self._last: dict[str, tuple[PathwayContext | None, int, bytes]] = {}

    def on_produce_record_buffered(self, record: ProduceRecord) -> None:
        if _has_pathway(record.headers):
            return
        parent = current_pathway()
        now_ms = _clock.time_ns() // 1_000_000
        cached = self._last.get(record.topic)
        if cached is not None and cached[0] == parent and cached[1] == now_ms:
            value = cached[2]
        else:
            pending = self._produce_checkpoint(record.topic)
            value = pending[1].encode_b64()
            self._remember(value, pending)
            self._last[record.topic] = (parent, now_ms, value)
        record.headers.append((HEADER, value))


def data_stream_hooks(streams: DataStreams, identity: ClientIdentity | None = None) -> DataStreamHooks:
    """The hooks for ``streams``' header mode (record mode adds a per-record hook, batch mode none)."""
    if streams.header_mode == "record":
        return RecordHeaderDataStreamHooks(streams, identity)
    return DataStreamHooks(streams, identity)
