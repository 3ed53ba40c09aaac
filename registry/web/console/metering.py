"""The console's metering page (``/admin/metering``): figures per organisation (a hosted tenant
apart from its host), API calls by caller kind, and the cross-check of the providers' and the
consumers' reports with every disagreement listed with both figures. It asks the same functions
as ``GET /api/v1/metering/organisations`` and ``/crosscheck`` and renders."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from mesh.http_auth import OPERATOR_READ
from mesh.http_input import int_param
from mesh.web.render import page
from registry.metering.crosscheck import DEFAULT_GRACE, FLAGGED, crosscheck
from registry.metering.http import organisations_report
from registry.metering.usage import JST, parse_period
from registry.web.console.common import console, names, show


@page(OPERATOR_READ)
async def metering(request: web.Request) -> web.Response:
    store = console(request).store
    period = parse_period(request.query.get("period") or None)
    grace = int_param(request.query, "grace_minutes",
                      default=int(DEFAULT_GRACE.total_seconds() // 60), low=0, high=60 * 24 * 31)
    return await show(request, "console/metering.html", {
        "period": period, "month": period.start.astimezone(JST).strftime("%Y-%m"),
        "report": await organisations_report(store, period.label),
        "check": await crosscheck(store.db, period, grace=timedelta(minutes=grace)),
        "grace": grace, "flagged": FLAGGED, "names": await names(store)})


def add_metering_pages(app: web.Application) -> None:
    app.router.add_get("/admin/metering", metering)
