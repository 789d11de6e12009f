"""The data-stream map: services and topics as nodes, checkpoints as edges, from exported buckets.

Input: the JSON lines :class:`~kafkahooks.datastreams.JsonLinesExporter` writes (one line per
pathway group per 10-second bucket, with serialized sketches). A produce checkpoint
(``direction:out``, ``topic:T``) is an edge from its service to topic T; a consume checkpoint
(``direction:in``, ``topic:T``, ``group:G``) an edge from T to its service. Edges merge every
pathway and bucket through them: message counts add up and the latency sketches merge exactly,
so p50/p99 are the quantiles over all their messages. A node's latency from origin is the merged
pathway latency of the checkpoints that arrive at it.
"""

from __future__ import annotations

import base64
import html
import json
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


@dataclass
class Edge:
    source: str
    target: str
    group: str | None = None
    messages: int = 0
    edge_latency: DDSketch | None = None

    def p(self, q: float) -> float:
        """Edge latency quantile, seconds."""
        return _q(self.edge_latency, q)


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

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> StreamMap:
        """Build the map from JSON lines (blank and malformed lines are skipped)."""
        m = cls()
        for raw in lines:
            text = raw.strip()
            if not text:
                continue
            try:
                row = json.loads(text)
                tags = dict(tag.split(":", 1) for tag in row["edge_tags"])
            except (ValueError, KeyError, TypeError):
                continue
            m._add(row, tags)
        m._layout()
        return m

    @classmethod
    def from_file(cls, path: str | Path) -> StreamMap:
        return cls.from_lines(Path(path).read_text(encoding="utf-8").splitlines())

    def _node(self, name: str, kind: str) -> Node:
        key = f"{kind}:{name}"
        if key not in self.nodes:
            self.nodes[key] = Node(name, kind)
        return self.nodes[key]

    def _add(self, row: dict[str, Any], tags: dict[str, str]) -> None:
        service = self._node(row["service"], "service")
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
        edge.edge_latency = _merge(edge.edge_latency, _sketch(row.get("edge_latency_sketch")))
        arriving.pathway_latency = _merge(arriving.pathway_latency, _sketch(row.get("pathway_latency_sketch")))

    def _layout(self) -> None:
        """Layers by longest path from the sources (cycles are cut where they close)."""
        outgoing: dict[str, list[str]] = defaultdict(list)
        incoming: dict[str, int] = defaultdict(int)
        for edge in self.edges.values():
            outgoing[edge.source].append(edge.target)
            incoming[edge.target] += 1
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

    # -- renderings -------------------------------------------------------------------------------

    def render_terminal(self) -> Any:
        """A rich table of the edges, pipeline order."""
        from rich.markup import escape
        from rich.table import Table

        table = Table(title="data-stream map", caption="latencies in ms; from origin = at the edge's target")
        for column in ("from", "to", "group"):
            table.add_column(column)
        for column in ("messages", "edge p50", "edge p99", "from origin p50", "from origin p99"):
            table.add_column(column, justify="right")
        for edge in sorted(self.edges.values(), key=lambda e: (self.nodes[e.source].layer, e.source, e.target)):
            target = self.nodes[edge.target]
            table.add_row(
                escape(self.label(edge.source)),
                escape(self.label(edge.target)),
                escape(edge.group or ""),
                f"{edge.messages:,}",
                f"{edge.p(0.5) * 1e3:.1f}",
                f"{edge.p(0.99) * 1e3:.1f}",
                f"{target.p(0.5) * 1e3:.1f}",
                f"{target.p(0.99) * 1e3:.1f}",
            )
        return table

    def _positions(self, width: float, height: float) -> dict[str, tuple[float, float]]:
        layers = self.layers()
        positions: dict[str, tuple[float, float]] = {}
        for i, keys in enumerate(layers):
            x = (i + 0.5) / len(layers) * width
            for j, key in enumerate(keys):
                positions[key] = (x, (j + 0.5) / len(keys) * height)
        return positions

    def render_svg(self, width: int = 1100, height: int = 420) -> str:
        """The map as a standalone SVG drawing."""
        pos = self._positions(width, height)
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">',
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
            ' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
        ]
        for edge in self.edges.values():
            (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
            parts.append(
                f'<line x1="{x1 + 80:.0f}" y1="{y1:.0f}" x2="{x2 - 80:.0f}" y2="{y2:.0f}" stroke="#555"'
                ' stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
            label = f"{edge.messages:,} msgs · p50 {edge.p(0.5) * 1e3:.1f} ms · p99 {edge.p(0.99) * 1e3:.1f} ms"
            parts.append(
                f'<text x="{(x1 + x2) / 2:.0f}" y="{(y1 + y2) / 2 - 8:.0f}" font-size="11" text-anchor="middle"'
                f' fill="#333">{html.escape(label)}</text>'
            )
        for key, node in self.nodes.items():
            x, y = pos[key]
            fill = "#e3f2fd" if node.kind == "service" else "#e8f5e9"
            stroke = "#1e88e5" if node.kind == "service" else "#43a047"
            rx = 14 if node.kind == "service" else 2
            parts.append(
                f'<rect x="{x - 80:.0f}" y="{y - 26:.0f}" width="160" height="52" rx="{rx}" fill="{fill}"'
                f' stroke="{stroke}" stroke-width="1.5"/>'
            )
            parts.append(
                f'<text x="{x:.0f}" y="{y - 4:.0f}" font-size="13" text-anchor="middle" font-weight="bold">'
                f"{html.escape(self.label(key))}</text>"
            )
            parts.append(
                f'<text x="{x:.0f}" y="{y + 14:.0f}" font-size="10" text-anchor="middle" fill="#555">'
                f"from origin p50 {node.p(0.5) * 1e3:.1f} / p99 {node.p(0.99) * 1e3:.1f} ms</text>"
            )
        parts.append("</svg>")
        return "\n".join(parts)

    def render_html(self, title: str = "kafkahooks data-stream map") -> str:
        """A self-contained page: the drawing and a table of every edge."""
        rows = "\n".join(
            f"<tr><td>{html.escape(self.label(e.source))}</td><td>{html.escape(self.label(e.target))}</td>"
            f"<td>{html.escape(e.group or '')}</td><td>{e.messages:,}</td><td>{e.p(0.5) * 1e3:.1f}</td>"
            f"<td>{e.p(0.99) * 1e3:.1f}</td><td>{self.nodes[e.target].p(0.5) * 1e3:.1f}</td>"
            f"<td>{self.nodes[e.target].p(0.99) * 1e3:.1f}</td></tr>"
            for e in sorted(self.edges.values(), key=lambda e: (self.nodes[e.source].layer, e.source))
        )
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin-top:16px}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}} td:nth-child(-n+3){{text-align:left}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>Services (rounded) and topics (square); each arrow is a checkpoint with its message count and
edge latency; each node shows the latency from the pathway's origin of what arrives at it.</p>
{self.render_svg()}
<table><tr><th>from</th><th>to</th><th>group</th><th>messages</th><th>edge p50 ms</th><th>edge p99 ms</th>
<th>from origin p50 ms</th><th>from origin p99 ms</th></tr>
{rows}
</table></body></html>
"""

    def render_png(self, path: str | Path) -> Path:
        """The map drawn with matplotlib."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import FancyBboxPatch

        per_layer = max((len(layer) for layer in self.layers()), default=1)
        width, height = max(2.6 * len(self.layers()), 6.0), 1.7 * per_layer + 0.6
        pos = self._positions(width, height)
        fig, ax = plt.subplots(figsize=(width, height))
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.axis("off")
        for edge in self.edges.values():
            (x1, y1), (x2, y2) = pos[edge.source], pos[edge.target]
            ax.annotate(
                "",
                xy=(x2 - 0.82, y2),
                xytext=(x1 + 0.82, y1),
                arrowprops={"arrowstyle": "-|>", "color": "#555", "lw": 1.3},
            )
            ax.text(
                (x1 + x2) / 2,
                (y1 + y2) / 2 - 0.36,
                f"{edge.messages:,} msgs\np50 {edge.p(0.5) * 1e3:.1f} ms\np99 {edge.p(0.99) * 1e3:.1f} ms",
                ha="center",
                va="top",
                fontsize=7,
                color="#333",
                bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "#dddddd"},
            )
        for key, node in self.nodes.items():
            x, y = pos[key]
            service = node.kind == "service"
            box = FancyBboxPatch(
                (x - 0.8, y - 0.28),
                1.6,
                0.56,
                boxstyle="round,pad=0.02,rounding_size=0.15" if service else "square,pad=0.02",
                facecolor="#e3f2fd" if service else "#e8f5e9",
                edgecolor="#1e88e5" if service else "#43a047",
            )
            ax.add_patch(box)
            ax.text(x, y + 0.06, self.label(key), ha="center", va="center", fontsize=9, fontweight="bold")
            ax.text(
                x,
                y - 0.15,
                f"from origin p50 {node.p(0.5) * 1e3:.0f} / p99 {node.p(0.99) * 1e3:.0f} ms",
                ha="center",
                va="center",
                fontsize=6,
                color="#555",
            )
        ax.set_title("kafkahooks data-stream map: messages and edge latency on each edge", fontsize=9)
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, dpi=110)
        plt.close(fig)
        return out
