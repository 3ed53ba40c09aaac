"""The console's start page: participants by status, active nodes, unused join tokens, the
revocation list's number and next update, and the latest admin actions."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from mesh.http_auth import OPERATOR_READ
from mesh.web.render import page
from registry.web.console.common import console, show
from registry.web.console.trust import crl_state

STATUSES = ("pending", "certified", "suspended")
RECENT = 8


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


def add_overview_routes(app: web.Application) -> None:
    app.router.add_get("/admin/", overview)
