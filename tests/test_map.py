"""The data-stream map for a fleet: a layered layout where nothing overlaps and no edge crosses a
node, checked on the layout's own numbers and in a real browser (headless Chromium, the system's
own, driven by Playwright), plus the page's hover and filter, and the PNG drawn from the same
geometry."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from kafkahooks.datastreams._layout import Geometry, layout
from kafkahooks.datastreams._map import StreamMap
from kafkahooks.datastreams._render import render_html, render_png, render_svg
from tests._fleet import EDGES, FLEET, write_fleet
from tests._geometry import Rect, crossings, overlapping

CYCLE = {"a": (("t2",), ("t1",)), "b": (("t1",), ("t2",)), "c": (("t1",), ())}
LONG_NAMES = {
    "checkout-service-of-the-payments-team-eu-west-1-and-more": ((), ("orders-of-the-checkout-service-eu",)),
    "e": (("orders-of-the-checkout-service-eu",), ()),
}
SCREEN_W = 1920


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> StreamMap:
    return StreamMap.from_files(write_fleet(tmp_path_factory.mktemp("fleet")))


def layout_boxes(g: Geometry) -> tuple[dict[str, Rect], list[tuple[str, list[tuple[float, float]], set[str]]]]:
    """Every node's and label's box by name, and every edge's two polylines with the boxes each may touch."""
    boxes: dict[str, Rect] = {key: (b.x, b.y, b.x + b.w, b.y + b.h) for key, b in g.nodes.items()}
    paths = []
    for i, route in enumerate(g.routes):
        label = route.label
        boxes[f"label {i}"] = (label.x, label.y, label.x + label.w, label.y + label.h)
        paths.append((f"edge {i} in", route.into_label, {route.edge.source, f"label {i}"}))
        paths.append((f"edge {i} out", route.out_of_label, {route.edge.target, f"label {i}"}))
    return boxes, paths


@pytest.mark.parametrize("shape", ["fleet", "cycle", "long names"])
def test_nothing_overlaps_and_no_edge_crosses_a_node(shape: str, fleet: StreamMap, tmp_path: Path) -> None:
    """The layout of a dozen services with fan-in and fan-out, of a cycle, and of names longer than
    a box: no two nodes or edge labels overlap, no edge enters a node or label it does not end at,
    everything lies inside the drawing, and the fleet fits a 1920-pixel-wide screen."""
    shapes: dict[str, Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
        "cycle": CYCLE,
        "long names": LONG_NAMES,
    }
    stream_map = fleet if shape == "fleet" else StreamMap.from_files(write_fleet(tmp_path, 10, shapes[shape]))
    g = layout(stream_map)
    boxes, paths = layout_boxes(g)
    assert len(g.routes) == len(stream_map.edges)
    assert [] == overlapping(boxes)
    assert [] == crossings(paths, boxes)
    assert all(
        0 <= left and right <= g.width and 0 <= top and bottom <= g.height
        for left, top, right, bottom in boxes.values()
    )
    assert all(0 <= x <= g.width and 0 <= y <= g.height for _, points, _ in paths for x, y in points)
    if shape == "fleet":
        assert g.width <= SCREEN_W - 48, g.width  # the page's own margins included
        assert EDGES == set(stream_map.edges)
        longest = max(g.routes, key=lambda r: len(r.out_of_label))
        assert len(longest.out_of_label) > 4, "the long edge bends through the layers it crosses"


def test_the_png_is_the_svgs_geometry_at_natural_size(fleet: StreamMap, tmp_path: Path) -> None:
    """One layout, two renderers: the PNG is exactly as large as the SVG, one pixel per unit."""
    import matplotlib.image

    g = layout(fleet)
    render_png(fleet, tmp_path / "map.png")
    height, width = matplotlib.image.imread(tmp_path / "map.png").shape[:2]
    assert (round(g.width), round(g.height)) == (width, height)
    assert f'width="{g.width:.0f}" height="{g.height:.0f}"' in render_svg(fleet)


# -- in a real browser ------------------------------------------------------------------------------


def chromium() -> str | None:
    """The system's Chromium: ``$KAFKAHOOKS_CHROMIUM``, else the first of the usual names on PATH."""
    found = os.environ.get("KAFKAHOOKS_CHROMIUM")
    if found:
        return found
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system (never a download), through Playwright. Without one this
    skips, saying why; ``.ci/run`` installs Debian's chromium and sets
    ``KAFKAHOOKS_REQUIRE_BROWSER=1``, which turns that skip into a failure."""
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        message = "needs the system's Chromium (apt-get install chromium) and playwright (kafkahooks[test])"
        if os.environ.get("KAFKAHOOKS_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


MEASURE = """() => {
  const svg = document.querySelector('#map svg');
  const rect = (b) => [b.x, b.y, b.x + b.width, b.y + b.height];
  const union = (bs) => [Math.min(...bs.map(b => b[0])), Math.min(...bs.map(b => b[1])),
                         Math.max(...bs.map(b => b[2])), Math.max(...bs.map(b => b[3]))];
  const nodes = {}, texts = {}, labels = {}, paths = [];
  for (const g of svg.querySelectorAll('g.node')) {
    nodes[g.dataset.node] = rect(g.querySelector('rect').getBBox());
    texts[g.dataset.node] = [...g.querySelectorAll('text')].map(t => rect(t.getBBox()));
  }
  for (const g of svg.querySelectorAll('g.edge')) {
    labels[g.id] = union([...g.querySelectorAll('text.label')].map(t => rect(t.getBBox())));
    for (const line of g.querySelectorAll('polyline')) {
      const points = [], length = line.getTotalLength();
      for (let at = 0; at <= length; at += 2) { const p = line.getPointAtLength(at); points.push([p.x, p.y]); }
      paths.push([g.id, g.dataset.source, g.dataset.target, points]);
    }
  }
  return {nodes, texts, labels, paths, scrollWidth: document.documentElement.scrollWidth,
          svgWidth: svg.getBBox().width};
}"""


@pytest.fixture(scope="module")
def page(browser: Any, fleet: StreamMap, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    out = tmp_path_factory.mktemp("page") / "map.html"
    out.write_text(render_html(fleet), encoding="utf-8")
    opened = browser.new_page(viewport={"width": SCREEN_W, "height": 1080})
    opened.goto(out.as_uri())
    yield opened
    opened.close()


def test_the_rendered_map_has_no_overlap_and_no_edge_through_a_node(page: Any) -> None:
    """From the geometry Chromium rendered (text measured with its real fonts, every polyline
    sampled every 2 px): no two nodes or edge labels overlap, every node's text stays in its box,
    no edge passes through a node or a label it does not end at, and the page needs no
    horizontal scrolling at 1920 pixels."""
    seen = page.evaluate(MEASURE)
    assert 17 == len(seen["nodes"])
    assert len(EDGES) == len(seen["labels"])
    boxes: dict[str, Rect] = {**seen["nodes"], **seen["labels"]}
    assert [] == overlapping(boxes)
    for key, inside in seen["texts"].items():
        left, top, right, bottom = seen["nodes"][key]
        assert all(left <= t[0] and t[2] <= right and top <= t[1] and t[3] <= bottom for t in inside), key
    paths = [(edge, points, {source, target, edge}) for edge, source, target, points in seen["paths"]]
    assert [] == crossings(paths, boxes, inset=2.0)
    assert seen["scrollWidth"] <= SCREEN_W


def test_hovering_highlights_a_pathway_and_shows_its_figures(page: Any) -> None:
    """Hovering analytics (which reads orders and payment-results) dims what is not on its
    pathways and shows its figures; hovering away restores the map."""
    page.hover('[data-node="service:analytics"]')
    dimmed = set(page.eval_on_selector_all(".dim", "els => els.map(e => e.dataset.node || e.id)"))
    on_path = {"service:gateway", "topic:orders", "topic:payments", "service:billing", "topic:payment-results"}
    assert "service:warehouse" in dimmed
    assert "topic:stock-updates" in dimmed
    assert not on_path & dimmed
    info = page.inner_text("#info")
    assert "analytics" in info
    assert "from origin p50" in info
    page.hover('g.edge[data-source="topic:stock-updates"] text.label')
    assert "warehouse" in page.inner_text("#info")
    assert "msg/s" in page.inner_text("#info")
    page.mouse.move(1, 1)
    assert 0 == page.eval_on_selector_all(".dim", "els => els.length")


def test_the_service_filter_keeps_its_pathways_only(page: Any) -> None:
    """Choosing warehouse keeps gateway → [orders] → inventory → [stock-updates] → warehouse and
    hides the rest; choosing "all" shows everything again."""
    page.select_option("#service", label="warehouse")

    def shown(key: str) -> bool:
        return bool(page.is_visible(f'[data-node="{key}"]'))

    assert all(shown(k) for k in ("service:gateway", "topic:orders", "service:inventory", "topic:stock-updates"))
    assert not any(shown(k) for k in ("service:ledger", "topic:payments", "service:notifier"))
    page.select_option("#service", value="")
    assert all(shown(k) for k in (f"service:{name}" for name in FLEET))
