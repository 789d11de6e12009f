"""The data-stream map: services and topics as nodes, checkpoints as edges, from exported buckets.

Input: the JSON lines :class:`~kafkahooks.datastreams.JsonLinesExporter` writes (per 10-second
bucket: one line per pathway group with serialized sketches, one per backlog offset, one per
consumer partition's lag), from one service or several (the dumps merge). A produce checkpoint
(``direction:out``, ``topic:T``) is an edge from its service to topic T; a consume checkpoint
(``direction:in``, ``topic:T``, ``group:G``) an edge from T to its service. Edges merge every
pathway and bucket through them: message counts add up and the latency sketches merge exactly,
so p50/p99 are the quantiles over all their messages. A node's latency from origin is the merged
pathway latency of the checkpoints that arrive at it. Throughput is each edge's messages and
payload bytes over the time its own traffic spans (its first checkpoint to its last, at least a
second; dumps older than those times fall back to their 10-second buckets); a consume edge shows
its group's lag (records behind the high watermark summed over partitions, and the largest time
lag), from the latest reading.
"""

from __future__ import annotations

import base64
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddsketch import DDSketch
from ddsketch.pb.ddsketch_pb2 import DDSketch as DDSketchMessage
from ddsketch.pb.proto import DDSketchProto


def _sketch(encoded: str | None) -> DDSketch | None:
    if not encoded:
        return None
    message = DDSketchMessage()
    message.ParseFromString(base64.b64decode(encoded))
    return DDSketchProto.from_proto(message)  # type: ignore[no-untyped-call,no-any-return]


def _merge(into: DDSketch | None, other: DDSketch | None) -> DDSketch | None:
    if other is None:
        return into
    if into is None:
        return other
    into.merge(other)
    return into


def _q(sketch: DDSketch | None, q: float) -> float:
    if sketch is None or sketch.count == 0:
        return 0.0
    return float(sketch.get_quantile_value(q) or 0.0)


MIN_ACTIVE_S = 1.0
"""An edge whose checkpoints all fall within a second is rated over one second."""


@dataclass
class Edge:
    source: str
    target: str
    group: str | None = None
    messages: int = 0
    payload_bytes: float = 0.0
    edge_latency: DDSketch | None = None
    lag_records: int | None = None
    """Consume edges: records the group is behind, summed over its partitions (latest readings)."""
    lag_seconds: float | None = None
    """Consume edges: the largest time lag over its partitions (latest readings)."""
    first_ns: int = 0
    """The edge's first checkpoint (epoch ns), 0 when the dumps do not say."""
    last_ns: int = 0
    """Its last checkpoint."""

    def p(self, q: float) -> float:
        """Edge latency quantile, seconds."""
        return _q(self.edge_latency, q)

    @property
    def active_s(self) -> float | None:
        """The time the edge's traffic spans, seconds (at least :data:`MIN_ACTIVE_S`), or None when
        the dumps carry no checkpoint times."""
        if not self.first_ns or self.last_ns < self.first_ns:
            return None
        return max((self.last_ns - self.first_ns) / 1e9, MIN_ACTIVE_S)


@dataclass
class Node:
    name: str
    kind: str  # "service" or "topic"
    pathway_latency: DDSketch | None = None
    layer: int = 0

    def p(self, q: float) -> float:
        """Latency-from-origin quantile at this node, seconds."""
        return _q(self.pathway_latency, q)


@dataclass
class StreamMap:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str, str | None], Edge] = field(default_factory=dict)
    window_ns: tuple[int, int] | None = None
    """The time the dumps' checkpoints cover: (first bucket's start, last bucket's end), epoch
    nanoseconds."""
    traffic_ns: tuple[int, int] | None = None
    """The time the traffic spans: (first checkpoint, last checkpoint), when the dumps say."""
    services: set[str] = field(default_factory=set)
    """Services whose dumps were read."""
    _lags: dict[tuple[str, str, str], tuple[int, int, float]] = field(default_factory=dict)

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> StreamMap:
        """Build the map from JSON lines (blank and malformed lines are skipped)."""
        m = cls()
        m._read(lines)
        m._finish()
        return m

    @classmethod
    def from_file(cls, path: str | Path) -> StreamMap:
        return cls.from_files([path])

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> StreamMap:
        """One map from several dumps (one per service, say): nodes, edges and sketches merge."""
        m = cls()
        for path in paths:
            m._read(Path(path).read_text(encoding="utf-8").splitlines())
        m._finish()
        return m

    @property
    def window_s(self) -> float:
        """The length of the time window, seconds (0 without data)."""
        return (self.window_ns[1] - self.window_ns[0]) / 1e9 if self.window_ns else 0.0

    def rate(self, amount: float, edge: Edge | None = None) -> float:
        """``amount`` per second over the time ``edge``'s traffic spans (over the window without
        checkpoint times, or without an edge)."""
        active = edge.active_s if edge is not None else None
        if active is not None:
            return amount / active
        return amount / self.window_s if self.window_s > 0 else 0.0

    def _read(self, lines: Iterable[str]) -> None:
        for raw in lines:
            text = raw.strip()
            if not text:
                continue
            try:
                row = json.loads(text)
                kind = row.get("kind", "pathway")
                if kind == "pathway":
                    tags = dict(tag.split(":", 1) for tag in row["edge_tags"])
                    self._add(row, tags)
                    self._widen(row)  # the traffic's buckets (lag readings are not traffic)
                elif kind == "lag":
                    tags = dict(tag.split(":", 1) for tag in row["tags"])
                    self._lag(row, tags)
                else:
                    continue
                self.services.add(str(row["service"]))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue

    def _widen(self, row: dict[str, Any]) -> None:
        start = int(row["start_ns"])
        end = start + int(row.get("duration_ns", 10_000_000_000))
        if self.window_ns is None:
            self.window_ns = (start, end)
        else:
            self.window_ns = (min(self.window_ns[0], start), max(self.window_ns[1], end))

    def _node(self, name: str, kind: str) -> Node:
        key = f"{kind}:{name}"
        if key not in self.nodes:
            self.nodes[key] = Node(name, kind)
        return self.nodes[key]

    def _add(self, row: dict[str, Any], tags: dict[str, str]) -> None:
        service = self._node(str(row["service"]), "service")
        topic = self._node(tags.get("topic", "?"), "topic")
        group = tags.get("group")
        if tags.get("direction") == "out":
            source, target, arriving = service, topic, topic
        else:
            source, target, arriving = topic, service, service
        key = (f"{source.kind}:{source.name}", f"{target.kind}:{target.name}", group)
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edges[key] = Edge(key[0], key[1], group)
        edge.messages += int(row.get("messages", 0))
        first, last = int(row.get("first_ns") or 0), int(row.get("last_ns") or 0)
        if first and last >= first:
            edge.first_ns = min(edge.first_ns, first) if edge.first_ns else first
            edge.last_ns = max(edge.last_ns, last)
            span = self.traffic_ns
            self.traffic_ns = (first, last) if span is None else (min(span[0], first), max(span[1], last))
        edge.payload_bytes += float(row.get("payload_bytes_total", 0.0))
        edge.edge_latency = _merge(edge.edge_latency, _sketch(row.get("edge_latency_sketch")))
        arriving.pathway_latency = _merge(arriving.pathway_latency, _sketch(row.get("pathway_latency_sketch")))

    def _lag(self, row: dict[str, Any], tags: dict[str, str]) -> None:
        key = (str(row["service"]), tags.get("consumer_group", ""), f"{tags['topic']}/{tags['partition']}")
        start = int(row["start_ns"])
        found = self._lags.get(key)
        if found is None or start >= found[0]:
            self._lags[key] = (start, int(row["records"]), float(row["seconds"]))

    def _finish(self) -> None:
        for (service, group, where), (_, records, seconds) in self._lags.items():
            topic = where.rsplit("/", 1)[0]
            edge = self.edges.get((f"topic:{topic}", f"service:{service}", group or None))
            if edge is None:
                continue
            edge.lag_records = (edge.lag_records or 0) + records
            edge.lag_seconds = max(edge.lag_seconds or 0.0, seconds)
        self._layout()

    def _layout(self) -> None:
        """Layers by longest path from the sources (cycles are cut where they close)."""
        outgoing: dict[str, list[str]] = defaultdict(list)
        for edge in self.edges.values():
            outgoing[edge.source].append(edge.target)
        layer = dict.fromkeys(self.nodes, 0)
        for _ in range(len(self.nodes)):
            changed = False
            for source, targets in outgoing.items():
                for target in targets:
                    if layer[target] < layer[source] + 1 <= len(self.nodes):
                        layer[target] = layer[source] + 1
                        changed = True
            if not changed:
                break
        for key, node in self.nodes.items():
            node.layer = layer[key]

    def layers(self) -> list[list[str]]:
        by_layer: dict[int, list[str]] = defaultdict(list)
        for key, node in sorted(self.nodes.items()):
            by_layer[node.layer].append(key)
        return [by_layer[i] for i in sorted(by_layer)]

    def label(self, key: str) -> str:
        node = self.nodes[key]
        return node.name if node.kind == "service" else f"[{node.name}]"

    # -- what each edge and node says -------------------------------------------------------------

    def edge_lines(self, edge: Edge, compact: bool = False) -> list[str]:
        """An edge's figures, line by line: volume, throughput, latency, and lag for consume edges
        (``compact``: the drawing's label, short lines without bytes per second)."""
        per_s, bytes_per_s = _si(self.rate(edge.messages, edge)), _si(self.rate(edge.payload_bytes, edge))
        lines = [
            f"{edge.messages:,} msgs · {per_s} msg/s" + ("" if compact else f" · {bytes_per_s} B/s"),
            f"{'' if compact else 'edge '}p50 {edge.p(0.5) * 1e3:.1f} / p99 {edge.p(0.99) * 1e3:.1f} ms",
        ]
        if edge.lag_records is not None:
            records = f"{edge.lag_records:,}" + ("" if compact else " records")
            lines.append(f"lag {records} · {edge.lag_seconds or 0.0:.1f} s")
        return lines

    def node_lines(self, key: str) -> list[str]:
        node = self.nodes[key]
        return [self.label(key), f"from origin p50 {node.p(0.5) * 1e3:.1f} / p99 {node.p(0.99) * 1e3:.1f} ms"]

    def window_text(self) -> str:
        """The time the map's figures are over: the traffic's own span when the dumps say (what
        the rates are divided by), else the buckets' window."""
        span = self.traffic_ns or self.window_ns
        if span is None:
            return "no data"
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(span[0] / 1e9))
        end = time.strftime("%H:%M:%S", time.gmtime(span[1] / 1e9))
        what = "traffic" if self.traffic_ns else "buckets"
        return f"{what} {start} to {end} UTC ({(span[1] - span[0]) / 1e9:.1f} s), {len(self.services)} service dump(s)"

    # -- renderings -------------------------------------------------------------------------------

    def render_terminal(self) -> Any:
        """A rich table of the edges, pipeline order."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(
            title=f"data-stream map · {escape(self.window_text())}",
            caption="latencies in ms; from origin = at the edge's target; lag = latest reading",
        )
        for column in ("from", "to", "group"):
            table.add_column(column, overflow="fold")  # a long name wraps; it is never cut
        for column in (
            "messages",
            "msg/s",
            "bytes/s",
            "edge p50",
            "edge p99",
            "from origin p50",
            "from origin p99",
            "lag records",
            "lag s",
        ):
            table.add_column(column, justify="right", no_wrap=True)  # figures are never cut or wrapped
        for edge in self._ordered():
            table.add_row(*(escape(value) for value in self.row(edge)))
        return table

    def row(self, edge: Edge) -> list[str]:
        """One edge as the table columns: from, to, group, messages, msg/s, bytes/s, edge p50/p99
        and from-origin p50/p99 (ms), lag records and seconds."""
        target = self.nodes[edge.target]
        return [
            self.label(edge.source),
            self.label(edge.target),
            edge.group or "",
            f"{edge.messages:,}",
            _si(self.rate(edge.messages, edge)),
            _si(self.rate(edge.payload_bytes, edge)),
            f"{edge.p(0.5) * 1e3:.1f}",
            f"{edge.p(0.99) * 1e3:.1f}",
            f"{target.p(0.5) * 1e3:.1f}",
            f"{target.p(0.99) * 1e3:.1f}",
            "" if edge.lag_records is None else f"{edge.lag_records:,}",
            "" if edge.lag_seconds is None else f"{edge.lag_seconds:.1f}",
        ]

    def _ordered(self) -> list[Edge]:
        return sorted(self.edges.values(), key=lambda e: (self.nodes[e.source].layer, e.source, e.target))


def _si(value: float) -> str:
    """A rate in short SI form: 950, 12.3k, 4.1M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
