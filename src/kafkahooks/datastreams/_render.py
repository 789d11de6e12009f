"""The data-stream map drawn: SVG (alone or in an interactive page) and PNG, from one geometry
(:mod:`~kafkahooks.datastreams._layout`), so both show the same picture.

The page: hovering a node or an edge highlights its pathway (everything upstream and downstream
of it) and shows its figures beside the map; a filter keeps one service's pathways only. Every
name and figure is HTML-escaped: service and topic names come from the dumps.
"""

from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from kafkahooks.datastreams._layout import (
    DETAIL_FONT,
    LABEL_FONT,
    LINE_H,
    MARGIN,
    NODE_FONT,
    TITLE_FONT,
    TITLE_H,
    Geometry,
    Route,
    layout,
)

if TYPE_CHECKING:
    from kafkahooks.datastreams._map import StreamMap

EDGE_COLOUR, LABEL_COLOUR = "#555", "#333"
SERVICE_FILL, SERVICE_STROKE, TOPIC_FILL, TOPIC_STROKE = "#e3f2fd", "#1e88e5", "#e8f5e9", "#43a047"


FAN_IN_NOTE = (
    "Fan-in: a service that reads several pathways in one poll continues the one that started "
    "first, so latency from origin downstream is the worst case of what it merged."
)


def _node_id(key: str) -> str:
    return "n-" + "".join(c if c.isalnum() or c in "-_" else f"_{ord(c):x}_" for c in key)


def pathways(stream_map: StreamMap) -> dict[str, set[str]]:
    """For each node key and each edge (``e{i}``, in drawing order), the element ids of its
    pathway: every node and edge upstream of it and downstream of it, itself included."""
    ordered = stream_map._ordered()
    out_of: dict[str, list[int]] = defaultdict(list)
    into: dict[str, list[int]] = defaultdict(list)
    for i, edge in enumerate(ordered):
        out_of[edge.source].append(i)
        into[edge.target].append(i)

    def walk(start: str, edges_of: dict[str, list[int]], forward: bool) -> set[str]:
        seen, todo = {start}, [start]
        ids = {_node_id(start)}
        while todo:
            for i in edges_of[todo.pop()]:
                ids.add(f"e{i}")
                nxt = ordered[i].target if forward else ordered[i].source
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
                    ids.add(_node_id(nxt))
        return ids

    down = {key: walk(key, out_of, True) for key in stream_map.nodes}
    up = {key: walk(key, into, False) for key in stream_map.nodes}
    found = {key: down[key] | up[key] for key in stream_map.nodes}
    for i, edge in enumerate(ordered):
        found[f"e{i}"] = up[edge.source] | down[edge.target] | {f"e{i}"}
    return found


def _info_edge(stream_map: StreamMap, route: Route) -> str:
    edge = route.edge
    what = f"{stream_map.label(edge.source)} → {stream_map.label(edge.target)}"
    if edge.group:
        what += f" (group {edge.group})"
    return "\n".join([what, *stream_map.edge_lines(edge)])


def _points(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def render_svg(stream_map: StreamMap, geometry: Geometry | None = None) -> str:
    """The map as a standalone SVG drawing, sized to its content, with ids, pathways and figures
    on every element for the page's script (and ``<title>`` tooltips without it)."""
    g = geometry or layout(stream_map)
    paths = pathways(stream_map)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{g.width:.0f}" height="{g.height:.0f}"'
        f' viewBox="0 0 {g.width:.0f} {g.height:.0f}" font-family="sans-serif">',
        "<style>.dim{opacity:0.12} .hidden{display:none} .edge,.node{cursor:pointer}"
        " .hl polyline{stroke:#d81b60;stroke-width:2.5} .hl rect{stroke-width:3}</style>",
        f'<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7"'
        f' orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="{EDGE_COLOUR}"/></marker></defs>',
        f'<text x="{g.width / 2:.0f}" y="{MARGIN + TITLE_H / 2:.0f}" font-size="{TITLE_FONT:.0f}" text-anchor="middle"'
        ' fill="#555">'
        f"{html.escape(stream_map.window_text())}</text>",
    ]
    for i, route in enumerate(g.routes):
        info = _info_edge(stream_map, route)
        parts.append(
            f'<g class="edge" id="e{i}" data-source="{html.escape(route.edge.source)}"'
            f' data-target="{html.escape(route.edge.target)}" data-path="{" ".join(sorted(paths[f"e{i}"]))}"'
            f' data-info="{html.escape(info)}"><title>{html.escape(info)}</title>'
        )
        parts.append(
            f'<polyline points="{_points(route.into_label)}" fill="none" stroke="{EDGE_COLOUR}" stroke-width="1.5"/>'
        )
        parts.append(
            f'<polyline points="{_points(route.out_of_label)}" fill="none" stroke="{EDGE_COLOUR}"'
            ' stroke-width="1.5" marker-end="url(#arrow)"/>'
        )
        box = route.label
        for k, line in enumerate(route.lines):
            parts.append(
                f'<text class="label" x="{box.cx:.1f}" y="{box.y + 2 + LINE_H * (k + 1) - 3:.1f}"'
                f' font-size="{LABEL_FONT:.0f}" text-anchor="middle" fill="{LABEL_COLOUR}">{html.escape(line)}</text>'
            )
        parts.append("</g>")
    for key, box in g.nodes.items():
        node = stream_map.nodes[key]
        service = node.kind == "service"
        title, detail = g.node_lines[key]
        info = "\n".join(stream_map.node_lines(key))
        parts.append(
            f'<g class="node" id="{_node_id(key)}" data-node="{html.escape(key)}"'
            f' data-path="{" ".join(sorted(paths[key]))}" data-info="{html.escape(info)}">'
            f"<title>{html.escape(info)}</title>"
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}"'
            f' rx="{14 if service else 2}" fill="{SERVICE_FILL if service else TOPIC_FILL}"'
            f' stroke="{SERVICE_STROKE if service else TOPIC_STROKE}" stroke-width="1.5"/>'
            f'<text x="{box.cx:.1f}" y="{box.y + 21:.1f}" font-size="{NODE_FONT:.0f}" text-anchor="middle"'
            f' font-weight="bold">{html.escape(title)}</text>'
            f'<text x="{box.cx:.1f}" y="{box.y + 39:.1f}" font-size="{DETAIL_FONT:.0f}" text-anchor="middle"'
            f' fill="#555">{html.escape(detail)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


_SCRIPT = """
const svg = document.querySelector('#map svg');
const items = [...svg.querySelectorAll('.edge, .node')];
const info = document.getElementById('info');
const filter = document.getElementById('service');
function pathOf(el) { return new Set(el.dataset.path.split(' ')); }
function show(keep, cls) {
  for (const el of items) {
    el.classList.remove('dim', 'hidden', 'hl');
    if (keep && !keep.has(el.id)) el.classList.add(cls);
  }
}
function filtered() {
  const node = filter.value ? document.getElementById(filter.value) : null;
  return node ? pathOf(node) : null;
}
for (const el of items) {
  el.addEventListener('mouseenter', () => {
    show(pathOf(el), 'dim');
    const hidden = filtered();
    if (hidden) for (const other of items) if (!hidden.has(other.id)) other.classList.add('hidden');
    el.classList.add('hl');
    info.textContent = el.dataset.info;
  });
  el.addEventListener('mouseleave', () => {
    show(filtered(), 'hidden');
    info.textContent = info.dataset.empty;
  });
}
filter.addEventListener('change', () => show(filtered(), 'hidden'));
"""


def render_html(stream_map: StreamMap, title: str = "kafkahooks data-stream map") -> str:
    """A self-contained page: the drawing (hover highlights a pathway and shows its figures; a
    filter keeps one service's pathways), and a table of every edge."""
    rows = "\n".join(
        "<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in stream_map.row(e)) + "</tr>"
        for e in stream_map._ordered()
    )
    options = "".join(
        f'<option value="{_node_id(key)}">{html.escape(node.name)}</option>'
        for key, node in sorted(stream_map.nodes.items())
        if node.kind == "service"
    )
    empty = "Hover over a service, a topic or an edge for its figures."
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse;margin-top:16px}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}} td:nth-child(-n+3){{text-align:left}}
#controls{{position:sticky;top:0;background:#fff;padding:6px 0;z-index:1}}
#info{{white-space:pre-line;display:inline-block;margin-left:24px;vertical-align:top;color:#333;min-height:3em}}
#map{{max-width:100%;overflow-x:auto}}</style>
</head><body><h1>{html.escape(title)}</h1>
<p>{html.escape(stream_map.window_text())}. Services (rounded) and topics (square); each arrow is a
checkpoint with its messages, throughput over its traffic and edge latency, and for consumers the
group's lag (latest reading); each node shows the latency from the pathway's origin of what
arrives at it. {html.escape(FAN_IN_NOTE)}</p>
<div id="controls"><label>Service: <select id="service"><option value="">all</option>{options}</select></label>
<span id="info" data-empty="{html.escape(empty)}">{html.escape(empty)}</span></div>
<div id="map">{render_svg(stream_map)}</div>
<table><tr><th>from</th><th>to</th><th>group</th><th>messages</th><th>msg/s</th><th>bytes/s</th>
<th>edge p50 ms</th><th>edge p99 ms</th><th>from origin p50 ms</th><th>from origin p99 ms</th>
<th>lag records</th><th>lag s</th></tr>
{rows}
</table>
<script>{_SCRIPT}</script>
</body></html>
"""


def render_png(stream_map: StreamMap, path: str | Path, geometry: Geometry | None = None) -> Path:
    """The map drawn with matplotlib at its natural size (one pixel per SVG unit, the SVG's font
    sizes), from the same geometry as the SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    g = geometry or layout(stream_map)
    dpi = 100.0
    pt = 72.0 / dpi  # SVG px -> matplotlib points at this dpi
    fig = plt.figure(figsize=(g.width / dpi, g.height / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, g.width)
    ax.set_ylim(g.height, 0)  # SVG coordinates: y grows downwards
    ax.axis("off")
    ax.text(
        g.width / 2,
        MARGIN + TITLE_H / 2,
        stream_map.window_text(),
        ha="center",
        va="center",
        fontsize=TITLE_FONT * pt,
        color="#555",
    )
    for route in g.routes:
        for points, arrow in ((route.into_label, False), (route.out_of_label, True)):
            xs, ys = zip(*points, strict=True)
            ax.plot(xs[: -1 if arrow else None], ys[: -1 if arrow else None], color=EDGE_COLOUR, lw=1.2)
            if arrow:
                ax.annotate(
                    "",
                    xy=points[-1],
                    xytext=points[-2],
                    arrowprops={"arrowstyle": "-|>", "color": EDGE_COLOUR, "lw": 1.2, "shrinkA": 0, "shrinkB": 0},
                )
        box = route.label
        for k, line in enumerate(route.lines):
            ax.text(
                box.cx,
                box.y + 2 + LINE_H * (k + 0.5),
                line,
                ha="center",
                va="center",
                fontsize=LABEL_FONT * pt,
                color=LABEL_COLOUR,
            )
    for key, box in g.nodes.items():
        service = stream_map.nodes[key].kind == "service"
        ax.add_patch(
            FancyBboxPatch(
                (box.x, box.y),
                box.w,
                box.h,
                boxstyle="round,pad=0,rounding_size=12" if service else "square,pad=0",
                facecolor=SERVICE_FILL if service else TOPIC_FILL,
                edgecolor=SERVICE_STROKE if service else TOPIC_STROKE,
            )
        )
        title, detail = g.node_lines[key]
        ax.text(box.cx, box.y + 17, title, ha="center", va="center", fontsize=NODE_FONT * pt, fontweight="bold")
        ax.text(box.cx, box.y + 35, detail, ha="center", va="center", fontsize=DETAIL_FONT * pt, color="#555")
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
