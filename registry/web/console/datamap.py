"""The data map (データマップ) in the console: the guidebook's two tables, a graph of
organisations, datasets, services and flows drawn as SVG on the server (no script; the edges'
widths follow the records metered), and the downloads (xlsx, CSV) that
``areamesh registry datamap export`` writes.

The page is DataMapBuilder.build, as GET /api/v1/datamap gives an operator; ``?period=`` limits
the records to a month (JST). The asset table on the page stops at ``PAGE_ROWS`` rows (the
downloads hold every row).
"""

from __future__ import annotations

from aiohttp import web

from mesh.http_auth import OPERATOR_READ
from mesh.http_input import choice_param
from mesh.web.render import page
from registry.datamap.build import ASSET_HEADERS, SERVICE_HEADERS, DataMapBuilder
from registry.datamap.export import XLSX_TYPE, csv_bytes, xlsx_bytes
from registry.datamap.svg import BOX_H, BOX_W, layout
from registry.metering.usage import JST, parse_period
from registry.web.console.common import console, show

PAGE_ROWS = 500


def _period(request: web.Request):
    text = request.query.get("period") or None
    return parse_period(text) if text else None


@page(OPERATOR_READ)
async def datamap(request: web.Request) -> web.Response:
    period = _period(request)
    m = await DataMapBuilder(console(request).store).build(period)
    flows = [e for e in m.graph["edges"] if e["kind"] == "flow"]
    labels = {n["id"]: n["label"] for n in m.graph["nodes"]}
    return await show(request, "console/datamap.html", {
        "m": m, "period": period, "service_headers": SERVICE_HEADERS,
        "asset_headers": ASSET_HEADERS, "asset_rows": m.asset_rows[:PAGE_ROWS],
        "more_assets": max(0, len(m.asset_rows) - PAGE_ROWS), "graph": layout(m.graph),
        "graph_flows": [(labels[e["from"]], labels[e["to"]], e["records"]) for e in flows],
        "month": period.start.astimezone(JST).strftime("%Y-%m") if period else "",
        "box_w": BOX_W, "box_h": BOX_H})


@page(OPERATOR_READ)
async def download(request: web.Request) -> web.Response:
    """``?format=xlsx`` (both tables) or ``?format=csv&table=service|asset``."""
    fmt = choice_param(request.query, "format", ("xlsx", "csv"), default="xlsx")
    table = choice_param(request.query, "table", ("service", "asset"), default="service")
    period = _period(request)
    m = await DataMapBuilder(console(request).store).build(period)
    suffix = f"-{period.label}" if period else ""
    if fmt == "xlsx":
        body, ctype, name = xlsx_bytes(m), XLSX_TYPE, f"datamap{suffix}.xlsx"
    else:
        body, ctype, name = csv_bytes(m, table), "text/csv", f"datamap-{table}{suffix}.csv"
    return web.Response(body=body, headers={
        "Content-Type": ctype + ("; charset=utf-8" if fmt == "csv" else ""),
        "Content-Disposition": f'attachment; filename="{name}"'})


def add_datamap_pages(app: web.Application) -> None:
    app.router.add_get("/admin/datamap", datamap)
    app.router.add_get("/admin/datamap/download", download)
