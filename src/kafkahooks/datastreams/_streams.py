"""``DataStreams``: checkpoints, 10-second aggregation into DDSketches, and export.

The hot path (:meth:`DataStreams.checkpoint`, :meth:`DataStreams.record`) computes a cached hash,
two subtractions, and hands a small tuple to a bounded buffer that drops and counts when full.
Sketch work happens on the export worker; closed buckets go to the exporters, and everything
left goes at shutdown (or :meth:`DataStreams.flush` with ``final=True``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from kafkahooks import _clock, _fork
from kafkahooks._log import RateLimitedLog, get_logger
from kafkahooks._selfstats import counter
from kafkahooks.datastreams._pathway import PathwayContext, pathway_hash
from kafkahooks.datastreams._stats import Exporter, Point, StatsBucket, StatsGroup
from kafkahooks.export import worker
from kafkahooks.export._buffer import PackedBuffer

BUCKET_NS = 10_000_000_000
MAX_GROUPS = 2000
"""Pathway groups per 10-second bucket: checkpoints of further (edge tags, hash, parent) fold into
one group per edge with hash and parent 0, counted in ``datastreams_groups_folded``: a producer
that invents pathways cannot grow the process without bound."""
HeaderMode = Literal["batch", "record", "off"]
_POINT_ROW = "=qQQqqdq"
"""A queued checkpoint's numbers: at_ns, hash, parent hash, edge and pathway latency (ns), payload
bytes, weight (its edge tags beside them)."""

_logger = get_logger(__name__)
_failure_log = RateLimitedLog(_logger, 60.0)
_export_errors = counter("datastreams_export_errors", "Data-stream exports that failed")
_groups_folded = counter("datastreams_groups_folded", "Checkpoints folded into a bucket's overflow group")


DEFAULT_ENV = "none"
"""The env without ``DD_ENV``, as Datadog's tracers hash it."""


def _default_service() -> str:
    for var in ("DD_SERVICE", "OTEL_SERVICE_NAME"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None:
        return "python"
    if script.stem == "__main__":  # python -m package: the package's name
        return script.parent.name or "python"
    return script.stem or "python"


class DataStreams:
    """Data-stream monitoring for the clients it is given to (``data_streams=``).

    ``service`` and ``env`` default to ``$DD_SERVICE`` (else ``$OTEL_SERVICE_NAME``, else the
    script's name) and ``$DD_ENV`` (else ``"none"``, as Datadog's tracers hash it). Edge tags
    carry ``kafka_cluster_id`` as ddtrace's do: each client's own, from its Metadata responses;
    ``cluster_id`` overrides it for every client (``""``: no cluster tag). ``header_mode`` is
    ``"batch"`` (the pathway header on the first record of each producer batch), ``"record"`` (on
    every record, for fleets with per-record consumers) or ``"off"`` (no header: consumers start
    a new pathway at each record batch, from its timestamp). ``exporters`` default to OpenTelemetry metrics; add
    :class:`~kafkahooks.datastreams.DatadogAgentExporter` for Datadog's backend.
    """

    def __init__(
        self,
        service: str | None = None,
        env: str | None = None,
        *,
        header_mode: HeaderMode = "batch",
        exporters: Sequence[Exporter] | None = None,
        cluster_id: str | None = None,
        capacity: int = 10_000,
        bucket_ns: int = BUCKET_NS,
    ) -> None:
        if header_mode not in ("batch", "record", "off"):
            raise ValueError(f"header_mode must be 'batch', 'record' or 'off', not {header_mode!r}")
        self.service = service or _default_service()
        # Datadog's tracers hash env "none" when DD_ENV is unset: the same default keeps one node
        # per service in a fleet that mixes them.
        self.env = env if env is not None else (os.environ.get("DD_ENV", "").strip() or DEFAULT_ENV)
        self.header_mode: HeaderMode = header_mode
        self.cluster_id = cluster_id
        self.bucket_ns = bucket_ns
        if exporters is None:
            from kafkahooks.datastreams._exporters import OtelMetricsExporter

            exporters = [OtelMetricsExporter()]
        self.exporters = list(exporters)
        self.name = f"datastreams:{self.service}"
        self.buffer = PackedBuffer(self.name, capacity, _POINT_ROW, worker().wake)
        """Checkpoints waiting for the worker: each a row of numbers and its edge tags (see
        :meth:`record`); drained as ``(edge_tags, at_ns, hash, parent_hash, edge_ns, pathway_ns,
        payload_bytes, weight)``."""
        self._backlogs: dict[tuple[str, ...], int] = {}
        self._lags: dict[tuple[str, ...], tuple[int, float]] = {}
        self._backlog_lock = _fork.Lock()
        self._buckets: dict[int, StatsBucket] = {}
        self._process_lock = _fork.Lock()
        self._cluster_tags: dict[str, str] = {}
        worker().register(self)

    def __repr__(self) -> str:
        return f"<DataStreams service={self.service!r} env={self.env!r} header_mode={self.header_mode}>"

    @property
    def dropped(self) -> int:
        """Checkpoints dropped because the buffer was full."""
        return self.buffer.dropped

    # -- edge tags --------------------------------------------------------------------------------

    def cluster(self, detected: str | None) -> str | None:
        """The cluster id to tag with: the one given to this object (``""``: none) over the one a
        client ``detected`` from its metadata."""
        return self.cluster_id if self.cluster_id is not None else detected

    def produce_tags(self, topic: str, cluster_id: str | None = None) -> tuple[str, ...]:
        """Sorted edge tags of a produce to ``topic`` (on the cluster a client detected). Built on
        each call: the wrapped clients cache whole checkpoints, so nothing is kept here per topic."""
        cluster_id = self.cluster(cluster_id)
        if cluster_id:
            return ("direction:out", self._cluster_tag(cluster_id), f"topic:{topic}", "type:kafka")
        return ("direction:out", f"topic:{topic}", "type:kafka")

    def consume_tags(self, topic: str, group: str | None, cluster_id: str | None = None) -> tuple[str, ...]:
        """Sorted edge tags of a consume from ``topic`` by ``group`` (on the cluster a client detected)."""
        cluster_id = self.cluster(cluster_id)
        raw = ["direction:in", f"topic:{topic}", "type:kafka"]
        if group:
            raw.append(f"group:{group}")
        if cluster_id:
            raw.append(self._cluster_tag(cluster_id))
        return tuple(sorted(raw))

    def _cluster_tag(self, cluster_id: str) -> str:
        """``kafka_cluster_id:{cluster_id}``, one string per cluster (a process talks to a few)."""
        tag = self._cluster_tags.get(cluster_id)
        if tag is None:
            if len(self._cluster_tags) >= 64:
                self._cluster_tags.clear()
            tag = self._cluster_tags[cluster_id] = f"kafka_cluster_id:{cluster_id}"
        return tag

    # -- the hot path -----------------------------------------------------------------------------

    def compute(
        self, edge_tags: tuple[str, ...], parent: PathwayContext | None, now_ms: int, origin_ms: int | None = None
    ) -> tuple[PathwayContext, int, int]:
        """The outgoing context of a checkpoint and its edge and pathway latencies (ms), not recorded.

        With no parent, the pathway starts here, at ``origin_ms`` when given (a record's timestamp,
        for payloads that arrive without a pathway header) or now.
        """
        if parent is None:
            start = now_ms if origin_ms is None or origin_ms < 0 else origin_ms
            ctx = PathwayContext(pathway_hash(self.service, self.env, edge_tags, 0), start, now_ms)
            return ctx, max(now_ms - start, 0), max(now_ms - start, 0)
        ctx = PathwayContext(
            pathway_hash(self.service, self.env, edge_tags, parent.hash), parent.pathway_start_ms, now_ms
        )
        return ctx, max(now_ms - parent.edge_start_ms, 0), max(now_ms - parent.pathway_start_ms, 0)

    def record(
        self,
        edge_tags: tuple[str, ...],
        outgoing_hash: int,
        parent_hash: int,
        edge_ms: int,
        pathway_ms: int,
        *,
        weight: int = 1,
        payload_bytes: float = 0.0,
        at_ns: int | None = None,
    ) -> bool:
        """Queue a computed checkpoint, known by its outgoing pathway hash (all a checkpoint records
        of its context); False (counted) if the buffer was full."""
        # One row of raw numbers beside the callers' cached edge tags: a consumer records one per
        # batch it hands out, amid the client's own records, and nothing of it may sit on the heap
        # until the worker's pass (PackedBuffer says why).
        return self.buffer.offer_row(
            edge_tags,
            _clock.time_ns() if at_ns is None else at_ns,
            outgoing_hash,
            parent_hash,
            edge_ms * 1_000_000,
            pathway_ms * 1_000_000,
            payload_bytes,
            weight,
        )

    def checkpoint(
        self,
        edge_tags: Sequence[str],
        parent: PathwayContext | None = None,
        *,
        weight: int = 1,
        payload_bytes: float = 0.0,
        origin_ms: int | None = None,
        now_ms: int | None = None,
    ) -> PathwayContext:
        """Compute and record a checkpoint; returns the outgoing context."""
        tags = tuple(sorted(edge_tags))
        now = _clock.time_ns() // 1_000_000 if now_ms is None else now_ms
        ctx, edge_ms, pathway_ms = self.compute(tags, parent, now, origin_ms)
        self.record(
            tags,
            ctx.hash,
            parent.hash if parent else 0,
            edge_ms,
            pathway_ms,
            weight=weight,
            payload_bytes=payload_bytes,
            at_ns=None if now_ms is None else now_ms * 1_000_000,  # taken when the caller says
        )
        return ctx

    def backlog(self, tags: tuple[str, ...], offset: int) -> None:
        """Note an offset for consumer lag (``type:kafka_produce`` / ``type:kafka_commit`` tags)."""
        with self._backlog_lock:
            if offset > self._backlogs.get(tags, -1):
                self._backlogs[tags] = offset

    def lag(self, tags: tuple[str, ...], records: int, seconds: float) -> None:
        """Note a consumer's lag behind the high watermark (``type:kafka_lag`` tags): the latest
        reading per tag set and bucket is kept."""
        with self._backlog_lock:
            self._lags[tags] = (records, seconds)

    # -- the export worker ------------------------------------------------------------------------

    def process(self, final: bool = False) -> None:
        """Aggregate what was queued; hand closed buckets (all of them when ``final``) to the exporters."""
        with self._process_lock:
            self._process(final)

    def _process(self, final: bool) -> None:
        points = [(at_ns, tags, *rest) for tags, at_ns, *rest in self.buffer.drain()]
        now = _clock.time_ns()
        routes = [(e, getattr(e, "uses_points", True), getattr(e, "uses_buckets", True)) for e in self.exporters]
        as_points: list[Point] | None = None
        buckets: list[StatsBucket] = []
        if any(uses_buckets for _, _, uses_buckets in routes):
            self._aggregate(points)
            with self._backlog_lock:
                backlogs, self._backlogs = self._backlogs, {}
                lags, self._lags = self._lags, {}
            if backlogs or lags:
                current = now - now % self.bucket_ns
                bucket = self._buckets.setdefault(current, StatsBucket(current, self.bucket_ns))
                for tags, offset in backlogs.items():
                    bucket.backlogs[tags] = max(offset, bucket.backlogs.get(tags, -1))
                bucket.lags.update(lags)
            closed = sorted(s for s in self._buckets if final or s + self.bucket_ns <= now)
            buckets = [self._buckets.pop(s) for s in closed]
        for exporter, uses_points, uses_buckets in routes:
            try:
                if points and uses_points:
                    if getattr(exporter, "kafkahooks_raw_points", False):  # reads them by position
                        exporter.export_points(self.service, self.env, points)  # type: ignore[arg-type]
                    else:
                        if as_points is None:
                            as_points = [Point._make(p) for p in points]
                        exporter.export_points(self.service, self.env, as_points)
                if buckets and uses_buckets:
                    exporter.export_buckets(self.service, self.env, buckets)
            except Exception as exc:
                _export_errors.add()
                _logger.warning("datastreams_export_failed", exporter=type(exporter).__name__, error=repr(exc)[:200])

    def _aggregate(self, points: list[tuple[Any, ...]]) -> None:
        """Add drained checkpoints to their buckets' sketches. Checkpoints that agree on everything
        but their weight (batches of one pathway in the same millisecond, typically) are added
        once with the weights summed: the same sketches, a fraction of the sketch work."""
        bucket_ns = self.bucket_ns
        merged: dict[tuple[int, tuple[str, ...], int, int, int, int, float], list[int]] = {}
        for at_ns, tags, h, parent_hash, edge_ns, pathway_ns, payload, weight in points:
            same = (at_ns - at_ns % bucket_ns, tags, h, parent_hash, edge_ns, pathway_ns, payload)
            found = merged.get(same)
            if found is None:
                merged[same] = [weight, at_ns, at_ns]
            else:
                found[0] += weight
                if at_ns < found[1]:
                    found[1] = at_ns
                elif at_ns > found[2]:
                    found[2] = at_ns
        open_buckets = self._buckets
        for (start, tags, h, parent_hash, edge_ns, pathway_ns, payload), (weight, first, last) in merged.items():
            bucket = open_buckets.get(start)
            if bucket is None:
                bucket = open_buckets[start] = StatsBucket(start, bucket_ns)
            key = (tags, h, parent_hash)
            group = bucket.groups.get(key)
            if group is None:
                if len(bucket.groups) >= MAX_GROUPS:
                    _groups_folded.add()
                    key = (tags, 0, 0)
                    group = bucket.groups.get(key)
                if group is None:
                    group = bucket.groups[key] = StatsGroup(*key)
            group.edge_latency.add(edge_ns / 1e9, weight)
            group.pathway_latency.add(pathway_ns / 1e9, weight)
            group.payload_size.add(payload if payload > 0.0 else 0.0, weight)
            group.messages += weight
            if not group.first_ns or first < group.first_ns:
                group.first_ns = first
            group.last_ns = max(group.last_ns, last)

    def flush(self, final: bool = True) -> None:
        """Process everything queued now, on the caller's thread; with ``final``, open buckets too."""
        self.process(final=final)

    def close(self) -> None:
        """Export everything, open buckets included (the worker calls this at shutdown)."""
        self.process(final=True)

    def forget(self) -> None:
        self.buffer.clear()
        self._buckets.clear()


_defaults: dict[int, DataStreams] = {}
_defaults_lock = _fork.Lock()


def default(meter_provider: Any = None) -> DataStreams:
    """The process-wide :class:`DataStreams` that ``tracing="hooks"`` uses when none is given
    (one per meter provider; the global one by default), exporting OpenTelemetry metrics."""
    with _defaults_lock:
        streams = _defaults.get(id(meter_provider))
        if streams is None:
            from kafkahooks.datastreams._exporters import OtelMetricsExporter

            streams = _defaults[id(meter_provider)] = DataStreams(exporters=[OtelMetricsExporter(meter_provider)])
        return streams
