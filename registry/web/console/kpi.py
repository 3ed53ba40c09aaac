"""The KPI dashboard at ``/admin/kpi`` (guidebook v3 §8.3): outputs and outcomes.

- Outputs (registry/kpi/outputs.py) for ``?from=YYYY-MM&to=YYYY-MM`` (default: the twelve
  months ending with this one): one small line chart per group, drawn by
  static/console-kpi.js with vendored uPlot from the figure's ``data-kpi`` attribute, each
  followed by a table of the same figures (the chart is ``aria-hidden``; screen readers and
  browsers without JavaScript read the table).
- Outcomes (registry/kpi/outcomes.py): each indicator's target, latest value and progress.
- Forms for an admin (``operator-admin``): define an indicator, enter one month's value, import
  a CSV file of values (registry/kpi/csv_io.py). Every change goes through ``KpiService`` and
  lands in the audit log. An auditor sees the figures, not the forms.
- ``/admin/kpi/export.csv``: the outputs and outcomes of the range as CSV (UTF-8 with a BOM).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mesh.errors import AreameshError, InvalidRequest
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.web.forms import read_form, read_upload
from mesh.web.i18n import request_language
from mesh.web.render import page
from registry.kpi.csv_io import export_csv
from registry.kpi.outcomes import DIRECTIONS, KpiService
from registry.kpi.outputs import GROUPS, Months, month_range
from registry.kpi.report import kpi_report
from registry.web.console.common import actor, console, done, html_or_raise, message_of, show

DEFINE_FIELDS = ("id", "name_ja", "name_en", "unit", "target", "target_date", "direction")


def _months(request: web.Request) -> Months:
    return month_range(request.query.get("from") or None, request.query.get("to") or None)


def charts(outputs: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """One chart per output group: its series, and the data the script draws."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for s in outputs["outputs"]:
        by_group.setdefault(s["group"], []).append(s)
    out = []
    for group, series in by_group.items():
        ja, en = GROUPS[group]
        name = ja if lang == "ja" else en
        out.append({
            "id": f"kpi-{group.replace('_', '-')}", "name": name, "series": series,
            "group": group, "measure": series[0]["measure"],
            "data": {"months": outputs["months"],
                     "series": [{"label": s["name_ja"] if lang == "ja" else s["name_en"],
                                 "values": s["values"]} for s in series]}})
    return out


async def _render(request: web.Request, *, errors: Mapping[str, str] | None = None,
                  form: Mapping[str, str] | None = None, status: int = 200,
                  import_rows: list[dict[str, Any]] | None = None) -> web.Response:
    c = console(request)
    months = _months(request)
    outputs, outcomes = await kpi_report(c.store.db, c.config.data_dir / "identity", months)
    lang = request_language(request)
    return await show(request, "console/kpi.html", {
        "months": months, "first": months.labels[0], "last": months.labels[-1],
        "charts": charts(outputs, lang), "outcomes": outcomes, "directions": DIRECTIONS,
        "errors": errors or {}, "form": form or {}, "import_rows": import_rows or [],
        "export_query": f"from={months.labels[0]}&to={months.labels[-1]}"}, status=status)


@page(OPERATOR_READ)
async def dashboard(request: web.Request) -> web.Response:
    return await _render(request)


@page(OPERATOR_READ)
async def export(request: web.Request) -> web.Response:
    c = console(request)
    months = _months(request)
    outputs, outcomes = await kpi_report(c.store.db, c.config.data_dir / "identity", months)
    name = f"kpi_{months.labels[0]}_{months.labels[-1]}.csv"
    return web.Response(body=export_csv(outputs, outcomes),
                        content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})


@page(OPERATOR_ADMIN)
async def define(request: web.Request) -> web.Response:
    form = await read_form(request)
    fields = {k: form.get(k, "") for k in DEFINE_FIELDS}
    try:
        await KpiService(console(request).admin).define(actor(request), fields)
    except AreameshError as exc:
        html_or_raise(request, exc)
        where = exc.details.get("field") if isinstance(exc.details, dict) else None
        return await _render(request, errors={f"define_{where or 'form'}": message_of(request, exc)},
                             form=fields, status=exc.http_status)
    raise done("/admin/kpi", "kpi_defined")


@page(OPERATOR_ADMIN)
async def set_value(request: web.Request) -> web.Response:
    form = await read_form(request)
    fields = {k: form.get(k, "") for k in ("indicator", "period", "value")}
    try:
        await KpiService(console(request).admin).set_value(
            actor(request), fields["indicator"].strip(), fields["period"], fields["value"])
    except AreameshError as exc:
        html_or_raise(request, exc)
        where = exc.details.get("field") if isinstance(exc.details, dict) else None
        return await _render(request, errors={f"value_{where or 'form'}": message_of(request, exc)},
                             form=fields, status=exc.http_status)
    raise done("/admin/kpi", "kpi_value_saved")


@page(OPERATOR_ADMIN)
async def import_values(request: web.Request) -> web.Response:
    await read_form(request, files=("file",))
    upload = await read_upload(request, "file")
    try:
        if upload is None:
            raise InvalidRequest("choose a CSV file", message_ja="CSVファイルを選んでください",
                                 code="kpi_import_no_file")
        await KpiService(console(request).admin).import_csv(actor(request), upload.data,
                                                            upload.filename)
    except AreameshError as exc:
        html_or_raise(request, exc)
        rows = exc.details.get("rows", []) if isinstance(exc.details, dict) else []
        return await _render(request, errors={"import_file": message_of(request, exc)},
                             import_rows=rows, status=exc.http_status)
    raise done("/admin/kpi", "kpi_imported")


def add_kpi_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/kpi", dashboard)
    r.add_get("/admin/kpi/export.csv", export)
    r.add_post("/admin/kpi/outcomes", define)
    r.add_post("/admin/kpi/values", set_value)
    r.add_post("/admin/kpi/import", import_values)
