"""Geometry checks for the data-stream map: boxes that overlap, and edges that cross a box they do
not end at. Boxes are (left, top, right, bottom); the same checks run on the layout's numbers and
on what a browser rendered."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

Rect = tuple[float, float, float, float]
Point = tuple[float, float]


def overlapping(boxes: dict[str, Rect], margin: float = 0.5) -> list[tuple[str, str]]:
    """Every pair of named boxes that overlap by more than ``margin`` in both directions."""
    names = sorted(boxes)
    found = []
    for i, a in enumerate(names):
        al, at, ar, ab = boxes[a]
        for b in names[i + 1 :]:
            bl, bt, br, bb = boxes[b]
            if min(ar, br) - max(al, bl) > margin and min(ab, bb) - max(at, bt) > margin:
                found.append((a, b))
    return found


def _crosses(p: Point, q: Point, box: Rect, inset: float) -> bool:
    """Whether segment p-q enters the box shrunk by ``inset`` (Liang-Barsky clipping)."""
    left, top, right, bottom = box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset
    if left >= right or top >= bottom:
        return False
    dx, dy = q[0] - p[0], q[1] - p[1]
    t0, t1 = 0.0, 1.0
    for edge_p, edge_q in ((-dx, p[0] - left), (dx, right - p[0]), (-dy, p[1] - top), (dy, bottom - p[1])):
        if edge_p == 0:
            if edge_q < 0:
                return False
            continue
        t = edge_q / edge_p
        if edge_p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return False
    return True


def crossings(
    paths: Iterable[tuple[str, Sequence[Point], set[str]]], boxes: dict[str, Rect], inset: float = 1.0
) -> list[tuple[str, str]]:
    """(path, box) for every path that enters a box other than the ones it may touch."""
    found = []
    for name, points, allowed in paths:
        for p, q in itertools.pairwise(points):
            for box_name, box in boxes.items():
                if box_name not in allowed and _crosses(p, q, box, inset):
                    found.append((name, box_name))
    return found
