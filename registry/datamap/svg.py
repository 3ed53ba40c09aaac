"""Layout of the data map's graph for a server-drawn SVG (no script, no CDN).

``layout`` places ``build.graph_model``'s nodes in four columns and turns each edge into a
cubic Bézier path from the right edge of its source box to the left edge of its target box. A
flow's stroke width grows with the logarithm of its records (1.5 px for none, 14 px for the
largest flow), so a flow of millions of records does not hide one of a hundred. The template
(``templates/console/datamap.html``) writes the SVG elements from these numbers with
autoescaping; the same figures are on the page as a table for those who do not see the picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

COLUMN_X = (10, 300, 590, 880)
BOX_W, BOX_H, GAP, TOP = 230, 30, 14, 44
WIDTH = COLUMN_X[-1] + BOX_W + 10
MIN_W, MAX_W = 1.5, 14.0
MAX_LABEL = 16


@dataclass(frozen=True)
class Box:
    id: str
    kind: str
    label: str          # shortened to fit the box
    full: str           # the whole name (the box's <title>)
    x: int
    y: int


@dataclass(frozen=True)
class Path:
    d: str
    kind: str
    width: float
    records: int
    title: str


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    boxes: list[Box]
    paths: list[Path]
    columns: list[tuple[int, str]]   # (x of the column's centre, heading key suffix)


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[:MAX_LABEL - 1] + "…"


def stroke(records: int, largest: int) -> float:
    if records <= 0 or largest <= 0:
        return MIN_W
    return round(MIN_W + (MAX_W - MIN_W) * math.log1p(records) / math.log1p(largest), 1)


def layout(graph: dict[str, Any]) -> Layout:
    rows: dict[int, int] = {}
    boxes: dict[str, Box] = {}
    for n in graph["nodes"]:
        col = n["column"]
        row = rows.get(col, 0)
        rows[col] = row + 1
        boxes[n["id"]] = Box(n["id"], n["kind"], _short(n["label"]), n["label"], COLUMN_X[col],
                             TOP + row * (BOX_H + GAP))
    largest = max((e["records"] for e in graph["edges"] if e["kind"] == "flow"), default=0)
    paths = []
    for e in graph["edges"]:
        a, b = boxes[e["from"]], boxes[e["to"]]
        x1, y1 = a.x + BOX_W, a.y + BOX_H / 2
        x2, y2 = b.x, b.y + BOX_H / 2
        mid = (x1 + x2) / 2
        width = stroke(e["records"], largest) if e["kind"] == "flow" else 1.0
        paths.append(Path(f"M{x1:.0f} {y1:.0f} C{mid:.0f} {y1:.0f} {mid:.0f} {y2:.0f} "
                          f"{x2:.0f} {y2:.0f}", e["kind"], width, e["records"],
                          f"{a.full} → {b.full}"))
    # thick flows first, so thin ones stay visible on top
    paths.sort(key=lambda p: -p.width)
    height = TOP + max(rows.values(), default=0) * (BOX_H + GAP) + 10
    return Layout(WIDTH, height, list(boxes.values()), paths,
                  [(x + BOX_W // 2, key) for x, key in zip(
                      COLUMN_X, ("providers", "datasets", "services", "recipients"), strict=True)])
