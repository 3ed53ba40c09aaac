"""``GET /api/v1/kpi?to=YYYY-MM&months=N``: the KPI report (outputs and outcomes) as JSON.

Operators only (admin or auditor): the figures cover every participant. The range is the
``months`` months (1–60, default 12) ending with ``to`` (default: the current month, JST). A
last month and a count, rather than two months, so that every well-formed request is a valid
range.
Each output series has ``measure`` ``stock`` (as of the month's end) or ``flow`` (during the
month); each outcome has its values, ``in_range`` (the values for the range's months, null where none
was entered), the baseline, the latest value, ``met`` and ``progress`` (0–1).
"""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from mesh.db import Database
from mesh.http_auth import OPERATOR_READ, door
from mesh.http_input import int_param
from registry.kpi.outputs import MAX_MONTHS, months_ending
from registry.kpi.report import kpi_report, report_json

SOURCES = web.AppKey("kpi_sources", tuple)      # (registry Database, identity dir)


@door(OPERATOR_READ)
async def kpi(request: web.Request) -> web.Response:
    db, identity_dir = request.app[SOURCES]
    count = int_param(request.query, "months", default=12, low=1, high=MAX_MONTHS)
    months = months_ending(request.query.get("to"), count)
    outputs, outcomes = await kpi_report(db, identity_dir, months)
    return web.json_response(report_json(outputs, outcomes),
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))


def add_kpi_routes(app: web.Application, db: Database, identity_dir: Path) -> None:
    app[SOURCES] = (db, identity_dir)
    app.router.add_get("/api/v1/kpi", kpi)
