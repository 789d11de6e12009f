"""Where data-stream statistics go: OpenTelemetry metrics, the Datadog agent, a JSON-lines file."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import metrics
from opentelemetry.semconv.schemas import Schemas

from kafkahooks import _fork
from kafkahooks._log import get_logger
from kafkahooks._otel import record_many, recorder
from kafkahooks._selfstats import counter
from kafkahooks._version import __version__
from kafkahooks.datastreams._stats import Point, StatsBucket

_logger = get_logger(__name__)
_agent_dropped = counter("datastreams_agent_buckets_dropped", "Buckets not sent because the agent refused them")
_series_folded = counter("datastreams_series_folded", "Checkpoints recorded in an edge's overflow metric series")

LATENCY_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


_KEPT_WHEN_FOLDED = ("direction:", "type:")


def _folded_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """An edge's tags in an overflow series: direction and type kept, every other value "overflow"."""
    return tuple(tag if tag.startswith(_KEPT_WHEN_FOLDED) else f"{tag.partition(':')[0]}:overflow" for tag in tags)


def hash_hex(value: int) -> str:
    """A pathway hash as 16 hex digits (how attributes and the map name them)."""
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"


class OtelMetricsExporter:
    """Data streams as OpenTelemetry metrics, for any OTLP backend.

    Per checkpoint: ``kafkahooks.datastreams.edge_latency`` and ``.pathway_latency`` (histograms,
    seconds; one measurement per checkpoint, that is per producer batch, not per record) and
    ``kafkahooks.datastreams.messages`` (counter of records, weights included). Attributes:
    ``kafkahooks.service``, ``kafkahooks.env``, one ``kafkahooks.edge.<tag>`` per edge tag
    (direction, topic, group, type), and the pathway's ``kafkahooks.pathway.hash`` and
    ``kafkahooks.pathway.parent_hash``: bounded by the number of pathways, not of records, and at
    most ``max_series`` pathways in all (further ones share a series per direction and edge type
    whose hashes, topic, group and other edge tags read ``overflow``, counted in
    ``datastreams_series_folded``).
    """

    def __init__(self, meter_provider: Any = None, *, max_series: int = 1000) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(
            "kafkahooks.datastreams", __version__, schema_url=Schemas.V1_44_0.value
        )
        self._edge = recorder(
            meter.create_histogram(
                "kafkahooks.datastreams.edge_latency",
                unit="s",
                description="Time since the previous checkpoint of the pathway, per checkpoint",
                explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS_S),
            )
        )
        self._pathway = recorder(
            meter.create_histogram(
                "kafkahooks.datastreams.pathway_latency",
                unit="s",
                description="Time since the pathway's origin, per checkpoint",
                explicit_bucket_boundaries_advisory=list(LATENCY_BUCKETS_S),
            )
        )
        self._messages = recorder(
            meter.create_counter(
                "kafkahooks.datastreams.messages", unit="{message}", description="Records through each checkpoint"
            )
        )
        self._attrs: dict[tuple[str, str, tuple[str, ...], int, int], dict[str, str]] = {}
        self._series: set[tuple[str, str, tuple[str, ...], int, int]] = set()
        self.max_series = max_series

    def _attributes(self, service: str, env: str, tags: tuple[str, ...], h: int, parent_hash: int) -> dict[str, str]:
        key = (service, env, tags, h, parent_hash)
        attrs = self._attrs.get(key)
        if attrs is None and len(self._series) >= self.max_series and key not in self._series:
            # Past the cap, further pathways share one series per direction and type, their topic,
            # group and other edge tags reading "overflow": the SDK keeps every series for the
            # provider's life, and neither a producer inventing pathways nor an application
            # writing to ever more topics may grow them without bound.
            _series_folded.add()
            h = parent_hash = 0
            tags = _folded_tags(tags)
            key = (service, env, tags, 0, 0)
            attrs = self._attrs.get(key)
        if attrs is None:
            attrs = {"kafkahooks.service": service, "kafkahooks.env": env}
            for tag in tags:
                name, _, value = tag.partition(":")
                attrs[f"kafkahooks.edge.{name}"] = value
            attrs["kafkahooks.pathway.hash"] = hash_hex(h) if h or parent_hash else "overflow"
            attrs["kafkahooks.pathway.parent_hash"] = hash_hex(parent_hash) if h or parent_hash else "overflow"
            self._series.add(key)
            if len(self._attrs) > 2 * self.max_series:
                self._attrs.clear()
            self._attrs[key] = attrs
        return attrs

    def export_points(self, service: str, env: str, points: Sequence[Point]) -> None:
        # The message counter is summed over the drained points first: one SDK call per pathway
        # per pass instead of one per checkpoint. The latency histograms keep one measurement per
        # checkpoint, but checkpoints of one series with the same latencies (a consumer of small
        # batches makes thousands a pass, in a few distinct milliseconds) are counted together
        # and recorded at once (record_many): the same histograms, a fraction of the SDK work.
        # Counted in dicts of plain numbers keyed by tuples of numbers: a pass of one-record
        # batches has about one key per checkpoint, and a list per key (holding the attributes)
        # stayed tracked for the collector until the pass ended.
        series: dict[int, dict[str, Any]] = {}
        checkpoints: dict[tuple[int, int, int], int] = {}
        weights: dict[tuple[int, int, int], int] = {}
        for _, tags, h, parent_hash, edge_ns, pathway_ns, _, weight in points:
            attrs = self._attributes(service, env, tags, h, parent_hash)
            series[id(attrs)] = attrs
            key = (id(attrs), edge_ns, pathway_ns)
            checkpoints[key] = checkpoints.get(key, 0) + 1
            weights[key] = weights.get(key, 0) + weight
        edge, pathway = self._edge, self._pathway
        messages: dict[int, int] = {}
        for key, count in checkpoints.items():
            series_id, edge_ns, pathway_ns = key
            attrs = series[series_id]
            record_many(edge, edge_ns / 1e9, attrs, count)
            record_many(pathway, pathway_ns / 1e9, attrs, count)
            messages[series_id] = messages.get(series_id, 0) + weights[key]
        for series_id, weight in messages.items():
            self._messages(weight, series[series_id])

    def export_buckets(self, service: str, env: str, buckets: Sequence[StatsBucket]) -> None:
        """Buckets carry nothing the point metrics do not."""

    uses_points = True
    uses_buckets = False
    """Nothing to aggregate into sketches for this exporter alone."""
    kafkahooks_raw_points = True
    """Reads each point by position: it gets the queued plain tuples, no :class:`Point` is built
    per checkpoint (see :meth:`DataStreams.record <kafkahooks.datastreams.DataStreams.record>`)."""


def agent_payload(service: str, env: str, buckets: Sequence[StatsBucket], hostname: str) -> dict[str, Any]:
    """The ``/v0.1/pipeline_stats`` payload (before msgpack and gzip) for ``buckets``."""
    return {
        "Service": service,
        "TracerVersion": f"kafkahooks-{__version__}",
        "Lang": "python",
        "Hostname": hostname,
        "Env": env,
        "Version": "",
        "Stats": [
            {
                "Start": bucket.start_ns,
                "Duration": bucket.duration_ns,
                "Stats": [
                    {
                        "EdgeTags": list(group.edge_tags),
                        "Hash": group.hash & 0xFFFFFFFFFFFFFFFF,
                        "ParentHash": group.parent_hash & 0xFFFFFFFFFFFFFFFF,
                        "PathwayLatency": _sketch_bytes(group.pathway_latency),
                        "EdgeLatency": _sketch_bytes(group.edge_latency),
                        "PayloadSize": _sketch_bytes(group.payload_size),
                    }
                    for group in bucket.groups.values()
                ],
                "Backlogs": [{"Tags": list(tags), "Value": offset} for tags, offset in bucket.backlogs.items()],
            }
            for bucket in buckets
        ],
    }


def _agent_url() -> str:
    url = os.environ.get("DD_TRACE_AGENT_URL", "").strip()
    if url:
        return url.rstrip("/")
    host = os.environ.get("DD_AGENT_HOST", "").strip() or "localhost"
    port = os.environ.get("DD_TRACE_AGENT_PORT", "").strip() or "8126"
    return f"http://{host}:{port}"


class DatadogAgentExporter:
    """Closed buckets to a Datadog agent: ``POST {url}/v0.1/pipeline_stats``, gzip-compressed msgpack.

    ``url`` defaults to ``$DD_TRACE_AGENT_URL``, else ``http://$DD_AGENT_HOST:$DD_TRACE_AGENT_PORT``,
    else ``http://localhost:8126``. A whole post (connecting, sending, the agent's entire answer) is
    bounded by ``timeout_s``: an agent that answers a byte at a time cannot hold the export worker,
    which every client of the process shares. A failure loses that post's buckets (counted, logged
    rate-limited, never retried in a loop); a 404 means the agent is too old (< 7.34), and sending
    stops.
    """

    def __init__(self, url: str | None = None, *, timeout_s: float = 2.0, hostname: str | None = None) -> None:
        self.url = (url or _agent_url()).rstrip("/") + "/v0.1/pipeline_stats"
        self.timeout_s = timeout_s
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self.disabled = False
        self.sent = 0

    def export_points(self, service: str, env: str, points: Sequence[Point]) -> None:
        """The agent takes aggregated buckets only."""

    uses_points = False
    uses_buckets = True

    def export_buckets(self, service: str, env: str, buckets: Sequence[StatsBucket]) -> None:
        if self.disabled:
            _agent_dropped.add(len(buckets))
            return
        import gzip

        import msgpack  # the agent's format: loaded by the exporter that needs it (with protobuf for the sketches)

        body = gzip.compress(msgpack.packb(agent_payload(service, env, buckets, self.hostname)))
        headers = {
            "Content-Type": "application/msgpack",
            "Content-Encoding": "gzip",
            "Datadog-Meta-Lang": "python",
            "Datadog-Meta-Tracer-Version": f"kafkahooks-{__version__}",
        }
        status = post(self.url, body, headers, self.timeout_s)
        if status == 404:
            self.disabled = True
            _logger.warning("datastreams_agent_unsupported", url=self.url, status=404)
            _agent_dropped.add(len(buckets))
            return
        if not 200 <= status < 300:
            raise ConnectionError(f"the agent answered HTTP {status}")
        self.sent += len(buckets)


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST ``body`` to ``url`` within ``timeout_s`` in all (connect, send, read the whole answer);
    returns the HTTP status. Raises ``TimeoutError`` past the deadline, ``OSError`` on failure."""
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no whole answer from {parts.hostname}:{parts.port} within {timeout_s} s")
        return remaining

    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname or "localhost", parts.port, timeout=left())
    try:
        connection.connect()
        sock = connection.sock
        sock.settimeout(left())
        connection.request("POST", parts.path or "/", body=body, headers=headers)
        sock.settimeout(left())
        response = connection.getresponse()
        while True:
            sock.settimeout(left())
            if not response.read1(65536):
                return response.status
    finally:
        connection.close()


class JsonLinesExporter:
    """Closed buckets as JSON lines, for ``kafkahooks map``: per bucket, one ``"kind": "pathway"``
    line per pathway group (counts, quantiles, serialized sketches, payload bytes), one
    ``"backlog"`` line per produce or commit offset and one ``"lag"`` line per consumer partition
    (records behind the high watermark and seconds)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = _fork.Lock()

    def export_points(self, service: str, env: str, points: Sequence[Point]) -> None:
        """Only buckets are written."""

    uses_points = False
    uses_buckets = True

    def export_buckets(self, service: str, env: str, buckets: Sequence[StatsBucket]) -> None:
        lines = []
        for bucket in buckets:
            where = {"service": service, "env": env, "start_ns": bucket.start_ns, "duration_ns": bucket.duration_ns}
            for tags, offset in bucket.backlogs.items():
                lines.append(json.dumps({"kind": "backlog", **where, "tags": list(tags), "offset": offset}))
            for tags, (records, seconds) in bucket.lags.items():
                lines.append(
                    json.dumps({"kind": "lag", **where, "tags": list(tags), "records": records, "seconds": seconds})
                )
            for group in bucket.groups.values():
                lines.append(
                    json.dumps(
                        {
                            "kind": "pathway",
                            **where,
                            "edge_tags": list(group.edge_tags),
                            "hash": hash_hex(group.hash),
                            "parent_hash": hash_hex(group.parent_hash),
                            "messages": group.messages,
                            "first_ns": group.first_ns,
                            "last_ns": group.last_ns,
                            "edge_latency_s": _quantiles(group.edge_latency),
                            "pathway_latency_s": _quantiles(group.pathway_latency),
                            "payload_bytes": _quantiles(group.payload_size),
                            "payload_bytes_total": float(group.payload_size.sum),
                            "edge_latency_sketch": base64.b64encode(_sketch_bytes(group.edge_latency)).decode(),
                            "pathway_latency_sketch": base64.b64encode(_sketch_bytes(group.pathway_latency)).decode(),
                        }
                    )
                )
        if lines:
            with self._lock, self.path.open("a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")


def _sketch_bytes(sketch: Any) -> bytes:
    """The DDSketch protobuf Datadog's backend parses (ddsketch ships no types for this call)."""
    from ddsketch.pb.proto import DDSketchProto  # protobuf: loaded only by the exporters that send sketches

    return bytes(DDSketchProto.to_proto(sketch).SerializeToString())  # type: ignore[no-untyped-call]


def _quantiles(sketch: Any) -> dict[str, float]:
    return {q: float(sketch.get_quantile_value(v) or 0.0) for q, v in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
