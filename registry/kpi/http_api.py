"""``GET /api/v1/kpi?from=YYYY-MM&to=YYYY-MM``: the KPI report (outputs and outcomes) as JSON.

Operators only (admin or auditor): the figures cover every participant. Without ``from`` and
``to`` the range is the twelve months ending with the current one (JST); at most 60 months.
Each output series has ``measure`` ``stock`` (as of the month's end) or ``flow`` (during the
month) and ``available`` false when this registry has no store for it yet (values are then 0);
each outcome has its values, ``in_range`` (the values for the range's months, null where none
was entered), the baseline, the latest value, ``met`` and ``progress`` (0–1).
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from mesh.db import Database
from mesh.http_auth import OPERATOR_READ, door
from registry.kpi.outputs import month_range
from registry.kpi.report import kpi_report, report_json

SOURCES = web.AppKey("kpi_sources", tuple)      # (registry Database, identity dir)


@door(OPERATOR_READ)
async def kpi(request: web.Request) -> web.Response:
    db, identity_dir = request.app[SOURCES]
    months = month_range(request.query.get("from") or None, request.query.get("to") or None)
    outputs, outcomes = await kpi_report(db, identity_dir, months)
    return web.json_response(report_json(outputs, outcomes),
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


def add_kpi_routes(app: web.Application, db: Database, identity_dir: Path) -> None:
    app[SOURCES] = (db, identity_dir)
    app.router.add_get("/api/v1/kpi", kpi)
