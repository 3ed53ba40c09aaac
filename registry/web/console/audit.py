"""The audit log of admin actions, newest first, a page at a time (``?before=<seq>``), with
the result of checking its hash chain (AdminAuditLog.verify, as GET /api/v1/admin/audit-log/verify)."""

from __future__ import annotations

from aiohttp import web

from mesh.http_auth import OPERATOR_READ
from mesh.http_input import int_param
from mesh.web.render import page
from registry.web.console.common import console, show

PER_PAGE = 50


@page(OPERATOR_READ)
async def audit(request: web.Request) -> web.Response:
    log = console(request).admin.audit
    before = int_param(request.query, "before", default=0, low=1, high=2**62) or None
    entries = await log.entries(limit=PER_PAGE + 1, before=before)
    more = len(entries) > PER_PAGE
    entries = entries[:PER_PAGE]
    return await show(request, "console/audit.html", {
        "entries": entries, "before": before, "check": await log.verify(),
        "older": entries[-1].seq if more and entries else None})


def add_audit_routes(app: web.Application) -> None:
    app.router.add_get("/admin/audit", audit)
