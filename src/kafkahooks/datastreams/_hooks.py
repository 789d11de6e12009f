"""The data-stream hooks a wrapped client installs: checkpoints per batch, not per record.

Producer: when a record opens a producer batch (``inject_batch_headers``, in the application's
thread or task), the checkpoint is computed against the current pathway (the one this thread or
task consumed last, or none: an origin) and, in ``header_mode="batch"``, its context is written
on that first record. Hash and header are cached per (topic, current pathway): a new batch
re-encodes only its edge time. When the broker acknowledges the batch, the export worker finds
the checkpoint again by the batch's topic, partition and first timestamp
(:mod:`kafkahooks.hooks._opened`: nothing is read back from the batch's bytes, in any header mode)
and records it once, weighted by the batch's record count (the batched path,
``on_requests_finished``: nothing runs on the I/O path for it); the produced offset is noted for
lag. Fan-out: producing never changes the current pathway, so every produce after a
consume continues the consumed pathway, not the previous produce's.

Consumer: records are observed per record batch as the client hands them out
(:mod:`kafkahooks.hooks._handout`), whatever the consume API. When a batch's first records go out,
its consume checkpoint is computed from the pathway on the batch's first record (read by the
connection's tap when the Fetch response arrived) and becomes the current pathway, so a service
that consumes and then produces continues the pathway without code; inside a ``getmany``/``poll``
call the oldest of the call's pathways wins (fan-in). When the batch is left, the checkpoint is
recorded, weighted by exactly the records handed out of it. A batch whose first record carried no
pathway (a producer without kafkahooks or with ``header_mode="off"``, a first record removed by
compaction) starts a new pathway at the batch's first timestamp.
"""

from __future__ import annotations

from binascii import b2a_base64
from collections.abc import Sequence
from typing import Any

from kafkahooks import _clock
from kafkahooks._identity import ClientIdentity
from kafkahooks.datastreams._current import _current, current_pathway, set_pathway
from kafkahooks.datastreams._pathway import (
    _U64,
    HEADER,
    LEGACY_HEADER,
    MAX_HEADER_VALUE,
    PathwayContext,
    _varint,
    _zigzag,
    compute_pathway_hash,
    decode_errors,
    from_headers,
)
from kafkahooks.datastreams._streams import DataStreams
from kafkahooks.hooks import ApiKey, KeyFilter
from kafkahooks.hooks._opened import OpenedBatches
from kafkahooks.hooks._records import (
    COMPRESSED_BYTES,
    FIRST_TIMESTAMP,
    NUM_RECORDS,
    RAW_HEADERS,
    UNCOMPRESSED_BYTES,
    BatchInfo,
    HandOut,
    RawBatch,
    Request,
    fetch_lags,
    raw_batch,
    raw_headers,
)
from kafkahooks.hooks._requests import RequestNeeds

_MAX_CACHED = 4096
_PRODUCE = int(ApiKey.PRODUCE)
_OFFSET_COMMIT = int(ApiKey.OFFSET_COMMIT)
_FETCH = int(ApiKey.FETCH)
_KEYS = KeyFilter.of(
    writes=(ApiKey.PRODUCE, ApiKey.OFFSET_COMMIT, ApiKey.FETCH),
    reads=(ApiKey.PRODUCE, ApiKey.OFFSET_COMMIT, ApiKey.FETCH),
)

# A produce checkpoint between the batch opening and its acknowledgement:
# (edge tags, outgoing pathway hash, parent hash, edge ms, pathway ms, at ns). Flat, of atomic
# values and the cached tags: it waits in the opened-batches table until the export worker's pass
# (up to half a second), and the collector untracks such a tuple at its first young collection,
# where one holding a PathwayContext (a named tuple, never untracked) was promoted to the oldest
# generation with the context, two objects per batch for every full collection to walk.
_Pending = tuple[tuple[str, ...], int, int, int, int, int]
# A consume checkpoint between a batch's first hand-out and its last: (edge tags, outgoing pathway
# hash, its pathway start ms, its edge start ms, parent hash, edge ms, pathway ms, payload bytes
# per record). Flat, like _Pending and for the same reason: it waits, in the batch's hand-out
# record, for the export worker; the outgoing PathwayContext is built only where it is made current.
_Entered = tuple[tuple[str, ...], int, int, int, int, int, int, float]


_new_tuple = tuple.__new__
"""Builds a :class:`PathwayContext` from its three fields without the named tuple's generated
Python ``__new__``."""


def _fan_in_order(token: _Entered) -> tuple[int, int, int]:
    return (token[2], token[3], token[1])


def _has_pathway(headers: Any) -> bool:
    try:
        return any(item[0] in (HEADER, LEGACY_HEADER) for item in headers or ())
    except Exception:
        return False


def _payload_per_record(info: BatchInfo) -> float:
    size = info.uncompressed_bytes if info.uncompressed_bytes >= 0 else info.compressed_bytes
    return size / info.num_records if info.num_records and size >= 0 else 0.0


class DataStreamHooks:
    """Per-batch data-stream checkpoints for one wrapped client (see the module docs)."""

    kafkahooks_kind = "datastreams"
    """Passed in ``hooks=``, an instance replaces the plugin of this kind a tracing mode installs."""
    kafkahooks_inline = True
    """Only computes a cached checkpoint per batch and queues: never timed or offloaded."""
    kafkahooks_raw_batches = True
    """Its ``on_fetch_batch_entered`` reads the batch by position: it gets a plain tuple, no
    :class:`~kafkahooks.hooks.BatchInfo` is built for it (see :data:`~kafkahooks.hooks._records.RawBatch`)."""
    kafkahooks_batch_timestamp = True
    """Its ``inject_batch_headers`` takes the batch's first timestamp, to find the batch again."""

    def __init__(self, streams: DataStreams, identity: ClientIdentity | None = None) -> None:
        self.streams = streams
        self.identity = identity or ClientIdentity()
        self._opened: OpenedBatches[_Pending] = OpenedBatches()
        self._decoded: dict[bytes | str, PathwayContext | None] = {}
        self._backlog_tags: dict[tuple[str, int], tuple[str, ...]] = {}
        # (topic, current pathway) -> (edge tags, hash, parent hash, encoded hash + pathway start or b"")
        self._produce: dict[tuple[str, PathwayContext | None], tuple[tuple[str, ...], int, int, bytes]] = {}
        # the same key -> (ms, header value, pending checkpoint), for the current millisecond only
        self._recent: dict[tuple[str, PathwayContext | None], tuple[int, bytes, _Pending]] = {}
        self._recent_ms = -1
        # (topic, parent pathway hash) -> (edge tags, hash) of a consume checkpoint
        self._consume: dict[tuple[str, int], tuple[tuple[str, ...], int]] = {}
        self._cluster_id: str | None = self.identity.cluster_id
        self._lag_tags: dict[tuple[str, int], tuple[str, ...]] = {}

    def _new_cluster_id(self) -> None:
        # Cached tags and hashes were made without it (Metadata normally arrives before any batch).
        self._cluster_id = self.identity.cluster_id
        self._produce.clear()
        self._recent = {}
        self._consume.clear()
        self._backlog_tags.clear()
        self._lag_tags.clear()

    @property
    def request_needs(self) -> RequestNeeds:
        return RequestNeeds(
            _KEYS,
            produce_batches=True,
            header_keys=frozenset({HEADER, LEGACY_HEADER}),
            commits=True,
            watermarks=True,
            produce_header_keys=frozenset(),  # produced batches are found by first timestamp
        )

    # -- producer: the application's thread or task -----------------------------------------------

    def _produce_checkpoint(self, topic: str) -> tuple[bytes, _Pending]:
        """The batch's outgoing header value and its pending checkpoint: hash and encoded prefix
        cached per (topic, current pathway), the whole value within one millisecond (batches of
        a topic's partitions open together)."""
        parent = _current.get()
        now_ns = _clock.time_ns()
        now_ms = now_ns // 1_000_000
        key = (topic, parent)
        if now_ms == self._recent_ms:
            hit = self._recent.get(key)
            if hit is not None and hit[0] == now_ms:  # (another thread may have moved on)
                return hit[1], hit[2]
        else:  # a new millisecond: what the last one kept goes, so nothing stays per topic
            self._recent_ms = now_ms
            self._recent = {}
        if self.identity.cluster_id is not self._cluster_id:  # the client learnt its cluster id
            self._new_cluster_id()
        cached = self._produce.get(key)
        if cached is None:
            streams = self.streams
            tags = streams.produce_tags(topic, self._cluster_id)
            parent_hash = parent.hash if parent else 0
            h = compute_pathway_hash(streams.service, streams.env, tags, parent_hash)
            prefix = _U64.pack(h) + _varint(_zigzag(parent.pathway_start_ms)) if parent else b""
            if len(self._produce) >= _MAX_CACHED:
                self._produce.clear()
            cached = self._produce[key] = (tags, h, parent_hash, prefix)
        tags, h, parent_hash, prefix = cached
        edge = _varint(now_ms << 1)  # zigzag of a positive number
        if parent is None:  # an origin: the pathway starts now
            value = b2a_base64(_U64.pack(h) + edge + edge, newline=False)
            pending: _Pending = (tags, h, 0, 0, 0, now_ns)
        else:
            value = b2a_base64(prefix + edge, newline=False)
            edge_ms = now_ms - parent.edge_start_ms
            pathway_ms = now_ms - parent.pathway_start_ms
            pending = (
                tags,
                h,
                parent_hash,
                edge_ms if edge_ms > 0 else 0,
                pathway_ms if pathway_ms > 0 else 0,
                now_ns,
            )
        self._recent[key] = (now_ms, value, pending)
        return value, pending

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        """Compute the batch's produce checkpoint, note it for the batch (found again by its first
        timestamp when acknowledged) and, in batch mode, carry its context on this record."""
        if headers and _has_pathway(headers):
            return None  # the application's own pathway header wins
        value, pending = self._produce_checkpoint(topic)
        if timestamp_ms >= 0:
            self._opened.add(topic, partition, timestamp_ms, pending)
        return [(HEADER, value)] if self.streams.header_mode == "batch" else None

    # -- consumer: the application's thread or task, once per batch ------------------------------

    def _decode(self, batch: RawBatch) -> PathwayContext | None:
        """The pathway in a :data:`~kafkahooks.hooks._records.RawBatch`'s headers (the first of
        the two keys, as :func:`from_headers` reads them), cached by its value."""
        value = None
        for i in range(RAW_HEADERS, len(batch) - 1, 2):
            if batch[i] in (HEADER, LEGACY_HEADER):
                value = batch[i + 1]
                break
        if value is None:
            return None
        if not isinstance(value, (bytes, str)) or len(value) > MAX_HEADER_VALUE:
            decode_errors.add()  # malformed or oversized: a new origin, never cached
            return None
        try:
            return self._decoded[value]
        except KeyError:
            pass
        ctx = from_headers(raw_headers(batch))
        if len(self._decoded) >= _MAX_CACHED:
            self._decoded.clear()
        self._decoded[value] = ctx
        return ctx

    def on_fetch_batch_entered(self, topic: str, partition: int, info: RawBatch | BatchInfo, scoped: bool) -> _Entered:
        """The consume checkpoint of a batch whose records start going to the application: what
        :meth:`DataStreams.compute` gives, with the edge tags and hash cached per (topic, parent
        pathway hash), as the producer side caches its own."""
        if isinstance(info, BatchInfo):  # called other than by the hand-out tracker
            info = raw_batch(info)
        parent = self._decode(info) if len(info) > RAW_HEADERS else None
        if self.identity.cluster_id is not self._cluster_id:  # the client learnt its cluster id
            self._new_cluster_id()
        parent_hash = parent.hash if parent is not None else 0
        cached = self._consume.get((topic, parent_hash))
        if cached is None:
            streams = self.streams
            tags = streams.consume_tags(topic, self.identity.group_id, self._cluster_id)
            if len(self._consume) >= _MAX_CACHED:
                self._consume.clear()
            h = compute_pathway_hash(streams.service, streams.env, tags, parent_hash)
            cached = self._consume[(topic, parent_hash)] = (tags, h)
        tags, h = cached
        now_ms = _clock.time_ns() // 1_000_000
        if parent is None:  # a new pathway, from the batch's first timestamp (or now)
            origin = info[FIRST_TIMESTAMP]
            start = origin if origin >= 0 else now_ms
            edge_ms = pathway_ms = now_ms - start if now_ms > start else 0
        else:
            start = parent.pathway_start_ms
            edge_ms = now_ms - parent.edge_start_ms
            pathway_ms = now_ms - start
            edge_ms = edge_ms if edge_ms > 0 else 0
            pathway_ms = pathway_ms if pathway_ms > 0 else 0
        if not scoped:
            _current.set(_new_tuple(PathwayContext, (h, start, now_ms)))
        count = info[NUM_RECORDS]
        size = info[UNCOMPRESSED_BYTES]
        if size < 0:
            size = info[COMPRESSED_BYTES]
        return (tags, h, start, now_ms, parent_hash, edge_ms, pathway_ms, size / count if count and size >= 0 else 0.0)

    def on_poll_ended(self, tokens: Sequence[_Entered | None]) -> None:
        """A ``getmany``/``poll`` call handed out these batches: fan-in keeps the oldest pathway
        (:func:`merge_contexts`' rule: the earliest pathway start, then edge start, then hash)."""
        entered = [t for t in tokens if t is not None]
        if entered:
            kept = entered[0] if len(entered) == 1 else min(entered, key=_fan_in_order)
            set_pathway(_new_tuple(PathwayContext, (kept[1], kept[2], kept[3])))

    # -- the export worker ------------------------------------------------------------------------

    def on_batches_handed_out(self, handouts: Sequence[HandOut]) -> None:
        """Hand-outs given by hand (the request log folds them as they are made instead)."""
        fold = self.kafkahooks_fold_handout
        for h in handouts:
            fold(h.topic, h.partition, h.handed, h.entered_ns, h.batch, h.token(self))

    def kafkahooks_fold_handout(
        self, topic: str, partition: int, count: int, at_ns: int, batch: RawBatch, token: _Entered | None
    ) -> None:
        """One batch's records handed out (the application's thread, as the hand-out is made):
        its checkpoint, weighed by those records, queued at once as a row of numbers, so that
        nothing of the hand-out waits for the worker (see
        :class:`~kafkahooks.export._buffer.PackedBuffer`)."""
        if token is None:  # its on_fetch_batch_entered failed (counted then)
            return
        tags, outgoing, _, _, parent_hash, edge_ms, pathway_ms, payload = token
        self.streams.record(
            tags, outgoing, parent_hash, edge_ms, pathway_ms, weight=count, payload_bytes=payload, at_ns=at_ns
        )

    def on_requests_finished(self, requests: Sequence[Request]) -> None:
        wall_offset: int | None = None
        for r in requests:
            if r.key == _FETCH:
                if r.watermarks:
                    if wall_offset is None:
                        wall_offset = _clock.time_ns() - _clock.monotonic_ns()
                    self._lagged(r, wall_offset)
            elif r.key == _PRODUCE:
                self._produce_acked(r)
            elif r.key == _OFFSET_COMMIT and r.acks and r.commits is not None:
                group = r.commits[0]
                cluster = self.streams.cluster(self.identity.cluster_id)
                for topic, partition, code, offset in r.acks:
                    if code == 0:
                        tags = (
                            f"consumer_group:{group}",
                            f"partition:{partition}",
                            f"topic:{topic}",
                            "type:kafka_commit",
                        )
                        self.streams.backlog(_with_cluster(self.streams, tags, cluster), offset)

    def _lagged(self, r: Request, wall_offset: int) -> None:
        """Consumer lag per partition from a Fetch response's high watermarks (no extra request)."""
        streams = self.streams
        group = self.identity.group_id
        cluster = streams.cluster(self.identity.cluster_id)
        for topic, partition, records, seconds in fetch_lags(r, wall_offset):
            tags = self._lag_tags.get((topic, partition))
            if tags is None:
                if len(self._lag_tags) >= _MAX_CACHED:
                    self._lag_tags.clear()
                base: tuple[str, ...] = (_partition_tag(partition), f"topic:{topic}", "type:kafka_lag")
                if group:
                    base = (f"consumer_group:{group}", *base)
                tags = self._lag_tags[(topic, partition)] = _with_cluster(streams, base, cluster)
            streams.lag(tags, records, seconds)

    def _produce_acked(self, r: Request) -> None:
        batches = r.batches
        if not batches:
            return
        streams = self.streams
        take = self._opened.take
        for (topic, partition), base_offset in r.accepted().items():
            info = batches.get((topic, partition))
            if info is None:
                continue
            pending = take(topic, partition, info.first_timestamp_ms)
            if pending is not None:
                tags, h, parent_hash, edge_ms, pathway_ms, at_ns = pending
                streams.record(
                    tags,
                    h,
                    parent_hash,
                    edge_ms,
                    pathway_ms,
                    weight=info.num_records,
                    payload_bytes=_payload_per_record(info),
                    at_ns=at_ns,
                )
            if base_offset >= 0:
                backlog = self._backlog_tags.get((topic, partition))
                if backlog is None:
                    if len(self._backlog_tags) >= _MAX_CACHED:
                        self._backlog_tags.clear()
                    topic_tag = f"topic:{topic}"
                    if pending is not None:  # share the checkpoint's own string, not a copy per cache
                        topic_tag = next((t for t in pending[0] if t == topic_tag), topic_tag)
                    backlog = self._backlog_tags[(topic, partition)] = _with_cluster(
                        streams,
                        (_partition_tag(partition), topic_tag, "type:kafka_produce"),
                        streams.cluster(self._cluster_id),
                    )
                streams.backlog(backlog, base_offset + info.num_records - 1)


def _with_cluster(streams: DataStreams, tags: tuple[str, ...], cluster_id: str | None) -> tuple[str, ...]:
    """Backlog tags with ``kafka_cluster_id`` when known, sorted (as ddtrace tags its backlogs)."""
    return tuple(sorted((*tags, streams._cluster_tag(cluster_id)))) if cluster_id else tags


_partition_tags: dict[int, str] = {}


def _partition_tag(partition: int) -> str:
    """``partition:{n}``, one string per partition number: a producer writing to thousands of
    single-partition topics holds one ``partition:0``, not one per topic."""
    tag = _partition_tags.get(partition)
    if tag is None:
        if len(_partition_tags) >= 1024:
            _partition_tags.clear()
        tag = _partition_tags[partition] = f"partition:{partition}"
    return tag


class RecordHeaderDataStreamHooks(DataStreamHooks):
    """``header_mode="record"``: the pathway header on every record, as each is appended to its
    batch (the value cached per topic, current pathway and millisecond)."""

    def __init__(self, streams: DataStreams, identity: ClientIdentity | None = None) -> None:
        super().__init__(streams, identity)
        # topic -> (current pathway, ms, the header list, its pending checkpoint)
        self._last: dict[str, tuple[PathwayContext | None, int, list[tuple[str, bytes]], _Pending]] = {}

    def inject_record_headers(self, topic: str, partition: int, headers: Any) -> list[tuple[str, bytes]] | None:
        if headers and _has_pathway(headers):
            return None  # the application's own pathway header wins
        parent = current_pathway()
        now_ms = _clock.time_ns() // 1_000_000
        cached = self._last.get(topic)
        if cached is not None and cached[1] == now_ms and cached[0] == parent:
            return cached[2]
        value, pending = self._produce_checkpoint(topic)
        if len(self._last) >= _MAX_CACHED:
            self._last.clear()
        header = [(HEADER, value)]
        self._last[topic] = (parent, now_ms, header, pending)
        return header

    def inject_batch_headers(
        self, topic: str, partition: int, headers: Any, timestamp_ms: int = -1
    ) -> list[tuple[str, bytes]] | None:
        """The batch's first record got its header from :meth:`inject_record_headers` just
        before: note that checkpoint for the batch (none if the application wrote its own)."""
        last = self._last.get(topic)
        if last is not None and timestamp_ms >= 0 and headers and last[2][0] in headers:
            self._opened.add(topic, partition, timestamp_ms, last[3])
        return None


def data_stream_hooks(streams: DataStreams, identity: ClientIdentity | None = None) -> DataStreamHooks:
    """The hooks for ``streams``' header mode (record mode adds a per-record hook, batch mode none)."""
    if streams.header_mode == "record":
        return RecordHeaderDataStreamHooks(streams, identity)
    return DataStreamHooks(streams, identity)
