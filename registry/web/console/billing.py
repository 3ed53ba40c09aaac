"""Cost allocation (費用按分) in the console: the stored runs, one run's summary with a chart
and the same figures as a table, and one participant's statement. An admin may run a period
from an uploaded rule file (the metered figures as the CLI takes them); a re-run replaces the
period's run and both are in the audit log. The pages read what BillingRuns stored, as
GET /api/v1/billing/{period} gives it to an operator.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mesh.errors import AreameshError, InvalidRequest, NotFound
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.web.forms import read_form, read_upload
from mesh.web.render import page
from registry.billing.export import BASIS_JA, KIND_JA, METHOD_JA, workbook
from registry.billing.rules import parse_rules
from registry.billing.runs import BillingRuns, run_billing
from registry.web.console.common import (
    actor,
    console,
    done,
    html_or_raise,
    message_of,
    names,
    q,
    show,
)


def chart_data(run: dict[str, Any]) -> dict[str, Any]:
    rows = run["statements"]
    return {"labels": [s["name"] or s["participant"] for s in rows],
            "fixed": [s["fixed"] for s in rows], "variable": [s["variable"] for s in rows]}


async def _runs_page(request: web.Request, error: str = "", period: str = "",
                     status: int = 200) -> web.Response:
    runs = await BillingRuns(console(request).store.db).list()
    return await show(request, "console/billing.html",
                      {"runs": runs, "error": error, "period": period}, status=status)


@page(OPERATOR_READ)
async def billing_runs(request: web.Request) -> web.Response:
    return await _runs_page(request)


@page(OPERATOR_ADMIN)
async def billing_run(request: web.Request) -> web.Response:
    form = await read_form(request, files=("rules",))
    period = form.get("period", "").strip()
    upload = await read_upload(request, "rules")
    c = console(request)
    try:
        if upload is None or not upload.data:
            raise InvalidRequest("choose the rule file (YAML)", code="invalid_form",
                                 message_ja="ルールファイル（YAML）を選んでください")
        rules = parse_rules(upload.data, name=upload.filename or "rules.yaml")
        result = await run_billing(c.admin, actor(request), rules, period)
    except AreameshError as exc:
        html_or_raise(request, exc)
        errors = (exc.details or {}).get("errors") or []
        text = message_of(request, exc)
        if errors:
            text += " — " + "; ".join(f"{e['field']}: {e.get('message_ja') or e.get('message')}"
                                      for e in errors[:10])
        return await _runs_page(request, text, period, exc.http_status)
    raise done(f"/admin/billing/{q(result['period'])}", "billing_run")


async def _run(request: web.Request) -> dict[str, Any]:
    return await BillingRuns(console(request).store.db).get(request.match_info["period"])


@page(OPERATOR_READ)
async def billing_summary(request: web.Request) -> web.Response:
    run = await _run(request)
    return await show(request, "console/billing_run.html", {
        "run": run, "chart": chart_data(run), "everyone": await names(console(request).store),
        "kinds": KIND_JA, "methods": METHOD_JA})


@page(OPERATOR_READ)
async def billing_statement(request: web.Request) -> web.Response:
    run = await _run(request)
    pid = request.match_info["participant"]
    own = [s for s in run["statements"] if s["participant"] == pid]
    if not own:
        raise NotFound(f"participant {pid} has no statement for {run['period']}",
                       code="statement_not_found",
                       message_ja=f"{run['period']} に {pid} の明細はありません")
    return await show(request, "console/billing_statement.html", {
        "run": run, "s": own[0], "items": {i["id"]: i for i in run["items"]},
        "kinds": KIND_JA, "methods": METHOD_JA, "bases": BASIS_JA})


@page(OPERATOR_READ)
async def billing_workbook(request: web.Request) -> web.Response:
    run = await _run(request)
    return web.Response(body=workbook(run), headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="billing-{run["period"]}.xlsx"'})


def add_billing_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/billing", billing_runs)
    r.add_post("/admin/billing", billing_run)
    r.add_get("/admin/billing/{period}/billing.xlsx", billing_workbook)
    r.add_get("/admin/billing/{period}", billing_summary)
    r.add_get("/admin/billing/{period}/{participant}", billing_statement)
