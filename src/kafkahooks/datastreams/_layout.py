"""Where everything of the data-stream map goes: one geometry, drawn by every renderer.

The layout is layered (Sugiyama), top to bottom, by python-igraph's ``layout_sugiyama``: it
orders each layer to reduce crossings (barycenter heuristic) and routes an edge that spans
several layers through dummy vertices, one per layer it crosses. igraph was chosen over grandalf
for being a maintained C library with wheels for every platform, deterministic, and fast (a
fleet lays out in about a millisecond); it places points, so the widths are kafkahooks' own step
(below).

Every edge's label is a vertex of its own, in the layer between the edge's source and target, so
the layout keeps labels apart as it keeps nodes apart: an edge runs from its source into the top
of its label and on from the label's bottom. Layers are rows; the rows of nodes and the rows of
labels alternate. Within a row, igraph's order is kept and each item is pushed right of its left
neighbour by at least half their widths plus :data:`GAP` (igraph's gaps are for points), so no
two items of a row overlap. Edges are drawn vertical inside a row (at their own item's or dummy's
x) and slanted only in the empty bands between rows, so an edge can never pass through a node or
a label it does not end at. Layers come from the longest path from the sources (pipeline order);
a cycle is cut where it closes, and its closing edge is routed upwards the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kafkahooks.datastreams._map import Edge, StreamMap

CHAR_W = 0.62
"""Width of an average character in a sans-serif font, in font sizes (a little over DejaVu and
Liberation Sans' averages: estimates err wide)."""
NODE_FONT, DETAIL_FONT, LABEL_FONT, TITLE_FONT = 13.0, 10.0, 11.0, 11.0
LINE_H = 14.0
"""Height of a label line, px."""
NODE_H = 50.0
GAP = 28.0
"""The least horizontal space between two items of a row, px."""
ROW_GAP = 34.0
"""The empty band between two rows, where edges slant, px."""
MARGIN = 24.0
TITLE_H = 30.0
DUMMY_W = 8.0
UNIT = 110.0
"""Pixels per unit of igraph's x coordinates (before the rows are pushed apart)."""
MAX_NAME = 32
"""Longest node name drawn in full; longer ones end in "…" (the page's table and tooltips keep them whole)."""


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def bottom(self) -> float:
        return self.y + self.h


@dataclass
class Route:
    """One map edge drawn: its label's box and lines, and the polyline from the source's box to
    the label and on to the target's box (the last point touches the target)."""

    edge: Edge
    key: tuple[str, str, str | None]
    label: Box
    lines: list[str]
    into_label: list[tuple[float, float]]
    out_of_label: list[tuple[float, float]]


@dataclass
class Geometry:
    width: float
    height: float
    nodes: dict[str, Box] = field(default_factory=dict)
    node_lines: dict[str, tuple[str, str]] = field(default_factory=dict)
    routes: list[Route] = field(default_factory=list)


def text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR_W


def short(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 1] + "…"


def layout(stream_map: StreamMap) -> Geometry:
    """The map's geometry (see the module docs)."""
    import igraph

    nodes = sorted(stream_map.nodes)
    ordered = stream_map._ordered()
    vertex = {key: i for i, key in enumerate(nodes)}
    n = len(nodes)
    sizes: list[tuple[float, float]] = []
    node_lines: dict[str, tuple[str, str]] = {}
    for key in nodes:
        title, detail = stream_map.node_lines(key)
        title = short(title)
        node_lines[key] = (title, detail)
        sizes.append((max(150.0, text_width(title, NODE_FONT) + 24, text_width(detail, DETAIL_FONT) + 20), NODE_H))
    layers = [2 * stream_map.nodes[key].layer for key in nodes]
    links: list[tuple[int, int]] = []
    labels: list[list[str]] = []
    for i, edge in enumerate(ordered):
        lines = stream_map.edge_lines(edge, compact=True)
        labels.append(lines)
        sizes.append((max(text_width(line, LABEL_FONT) for line in lines) + 8, LINE_H * len(lines) + 4))
        layers.append(2 * stream_map.nodes[edge.source].layer + 1)
        links += [(vertex[edge.source], n + i), (n + i, vertex[edge.target])]
    graph = igraph.Graph(n=n + len(ordered), edges=links, directed=True)
    placed = graph.layout_sugiyama(layers=layers, hgap=1, vgap=1, maxiter=200)
    coords = [tuple(c) for c in placed.coords]
    routing = placed.edge_routing

    # Rows: every vertex and every dummy, by layer, in igraph's order.
    rows: dict[int, list[tuple[float, str, Any, float]]] = {}
    for v, (x, y) in enumerate(coords):
        rows.setdefault(round(y), []).append((x, "v", v, sizes[v][0]))
    for e, points in enumerate(routing):
        for k, (x, y) in enumerate(points):
            rows.setdefault(round(y), []).append((x, "d", (e, k), DUMMY_W))
    centre: dict[tuple[str, Any], float] = {}
    left, right_most = float("inf"), float("-inf")
    for items in rows.values():
        items.sort()
        right = None
        for x, kind, ident, w in items:
            cx = x * UNIT
            if right is not None:
                cx = max(cx, right + GAP + w / 2)
            centre[(kind, ident)] = cx
            right = cx + w / 2
            left, right_most = min(left, cx - w / 2), max(right_most, right)
    if not centre:  # nothing to draw
        left = right_most = 0.0
    content = right_most - left + 2 * MARGIN
    width = max(content, text_width(stream_map.window_text(), TITLE_FONT) + 2 * MARGIN)
    shift = MARGIN - left + (width - content) / 2  # centred under a title wider than the graph

    # Row bands, top to bottom.
    band: dict[int, tuple[float, float]] = {}
    top = MARGIN + TITLE_H
    for r in range(min(rows, default=0), max(rows, default=-1) + 1):
        height = max((sizes[ident][1] for _, kind, ident, _ in rows.get(r, []) if kind == "v"), default=0.0)
        band[r] = (top, top + height)
        top += height + ROW_GAP
    boxes: list[Box] = []
    for v in range(len(sizes)):
        w, h = sizes[v]
        r = round(coords[v][1])
        b_top, b_bottom = band[r]
        cx = centre[("v", v)] + shift
        boxes.append(Box(cx - w / 2, (b_top + b_bottom - h) / 2, w, h))
    geometry = Geometry(width=width, height=top - ROW_GAP + MARGIN, node_lines=node_lines)
    geometry.nodes = {key: boxes[vertex[key]] for key in nodes}

    def path(a: int, b: int, e: int) -> list[tuple[float, float]]:
        """From vertex ``a`` to vertex ``b`` through the dummies of graph edge ``e``: vertical in
        each row band, slanted between bands."""
        ra, rb = round(coords[a][1]), round(coords[b][1])
        down = rb >= ra
        start, end = boxes[a], boxes[b]
        points = [(start.cx, start.bottom if down else start.y), (start.cx, band[ra][1] if down else band[ra][0])]
        for k, (_, y) in enumerate(routing[e]):
            x = centre[("d", (e, k))] + shift
            b_top, b_bottom = band[round(y)]
            points += [(x, b_top), (x, b_bottom)] if down else [(x, b_bottom), (x, b_top)]
        points += [(end.cx, band[rb][0] if down else band[rb][1]), (end.cx, end.y if down else end.bottom)]
        # A box as tall as its row leaves no stub in it: drop repeated points (an arrow needs a
        # last segment of some length to point along).
        return [p for k, p in enumerate(points) if k == 0 or p != points[k - 1]]

    for i, edge in enumerate(ordered):
        label_vertex = n + i
        geometry.routes.append(
            Route(
                edge=edge,
                key=(edge.source, edge.target, edge.group),
                label=boxes[label_vertex],
                lines=labels[i],
                into_label=path(vertex[edge.source], label_vertex, 2 * i),
                out_of_label=path(label_vertex, vertex[edge.target], 2 * i + 1),
            )
        )
    return geometry
