"""What the operating organisation watches and publishes: the overview, the certification
criteria (認定基準; read by everyone on /api/v1/participants, edited by an admin here), the
revocation list's state (as /api/v1/crl serves it), the audit log of admin actions with its
hash-chain check, and usage per participant and period.

The audit log pages newest first with ``?before=<seq>``. Usage is UsageLedger.summary, as
GET /api/v1/usage gives an operator, shown as an accessible table; static/console-bars.js
draws the same figures (the page's ``data-usage`` attribute) as a chart with vendored uPlot.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from cryptography import x509

from mesh.errors import AreameshError
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.http_input import int_param
from mesh.web.forms import read_form
from mesh.web.render import page
from registry.metering.usage import JST, UsageLedger, parse_period
from registry.web.console.common import (
    actor,
    console,
    done,
    html_or_raise,
    message_of,
    names,
    show,
)

STATUSES = ("pending", "certified", "suspended")
RECENT = 8
AUDIT_PAGE = 50


@dataclass(frozen=True)
class CrlState:
    number: int
    this_update: datetime
    next_update: datetime
    revoked: int


async def crl_state(request: web.Request) -> CrlState:
    """The list /api/v1/crl serves now (signed anew when it is due, as that route does)."""
    c = console(request)
    crl = await c.store.current_crl(c.admin.ca, c.config.crl_validity)
    revoked = len(x509.load_der_x509_crl(crl.crl_der))
    return CrlState(crl.number, crl.this_update, crl.next_update, revoked)


@page(OPERATOR_READ)
async def overview(request: web.Request) -> web.Response:
    c = console(request)
    by_status = Counter(p.status for p in await c.store.participants())
    return await show(request, "console/home.html", {
        "statuses": [(s, by_status.get(s, 0)) for s in STATUSES],
        "participants": sum(by_status.values()),
        "nodes": len(await c.store.nodes()),
        "unused_tokens": sum(1 for t in await c.store.tokens() if t.state == "unused"),
        "crl": await crl_state(request),
        "recent": await c.admin.audit.entries(limit=RECENT)})


@page(OPERATOR_READ)
async def criteria(request: web.Request) -> web.Response:
    text = await console(request).store.meta("certification_criteria") or ""
    return await show(request, "console/criteria.html", {"text": text, "error": ""})


@page(OPERATOR_ADMIN)
async def save_criteria(request: web.Request) -> web.Response:
    text = (await read_form(request)).get("criteria", "").replace("\r\n", "\n")
    try:
        await console(request).admin.set_criteria(actor(request), text)
    except AreameshError as exc:
        html_or_raise(request, exc)
        return await show(request, "console/criteria.html",
                          {"text": text, "error": message_of(request, exc)}, status=exc.http_status)
    raise done("/admin/criteria", "criteria_saved")


@page(OPERATOR_READ)
async def revocation(request: web.Request) -> web.Response:
    return await show(request, "console/revocation.html", {
        "crl": await crl_state(request), "validity": console(request).config.crl_validity})


@page(OPERATOR_READ)
async def audit(request: web.Request) -> web.Response:
    log = console(request).admin.audit
    before = int_param(request.query, "before", default=0, low=1, high=2**62) or None
    entries = await log.entries(limit=AUDIT_PAGE + 1, before=before)
    older = entries[AUDIT_PAGE - 1].seq if len(entries) > AUDIT_PAGE else None
    return await show(request, "console/audit.html", {
        "entries": entries[:AUDIT_PAGE], "before": before, "older": older,
        "check": await log.verify()})


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
    labels = {pid: p.name for pid, p in everyone.items()}
    summary = await UsageLedger(store.db).summary(period, labels)
    return await show(request, "console/usage.html", {
        "summary": summary, "period": period, "names": everyone,
        "month": period.start.astimezone(JST).strftime("%Y-%m"),
        "chart": chart_data(summary, labels)})


def add_oversight_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/", overview)
    r.add_get("/admin/usage", usage)
    r.add_get("/admin/criteria", criteria)
    r.add_post("/admin/criteria", save_criteria)
    r.add_get("/admin/revocation", revocation)
    r.add_get("/admin/audit", audit)
