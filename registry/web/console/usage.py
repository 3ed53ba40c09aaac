"""Usage per participant and billing period (UsageLedger.summary, as GET /api/v1/usage gives
an operator), as an accessible table, with a chart drawn by static/console-usage.js (uPlot,
vendored) from the same figures in the page's ``data-usage`` attribute."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mesh.http_auth import OPERATOR_READ
from mesh.web.render import page
from registry.metering.usage import JST, UsageLedger, parse_period
from registry.web.console.common import console, names, place, show


def chart_data(summary: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    rows = summary["participants"]
    return {"labels": [labels.get(r["id"]) or r["id"] for r in rows],
            "provided": [r["provided"]["records"] for r in rows],
            "consumed": [r["consumed"]["records"] for r in rows]}


@page(OPERATOR_READ)
async def usage(request: web.Request) -> web.Response:
    store = console(request).store
    period = parse_period(request.query.get("period") or None)
    everyone = await names(store)
    summary = await UsageLedger(store.db).summary(period, {p.id: p.name for p in everyone.values()})
    labels = {pid: p.name for pid, p in everyone.items()}
    return await show(request, "console/usage.html", {
        "summary": summary, "period": period, "names": everyone, "place": place,
        "month": period.start.astimezone(JST).strftime("%Y-%m"),
        "chart": chart_data(summary, labels)})


def add_usage_routes(app: web.Application) -> None:
    app.router.add_get("/admin/usage", usage)
