"""Handlers of ``/admin/agreements/``: thin, over ``service.py`` and the CLI's services.

A hosted tenant's account (``principal.scope``) sees only agreements on its own datasets; any
other agreement answers 404, as an unknown one does. Terminating calls
``connector.contracts.termination.terminate``, as ``contract terminate`` does; only an admin
may, after a confirmation page, with the session's CSRF token.

The notarisation shown is the one kept in the row when the agreement was FINALIZED (digest and
the registry's time): showing a page never calls the registry. A row finalized before the time
was kept says so ("not recorded").
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from connector.contracts.store import STATES, AgreementRow, AgreementStore
from connector.contracts.termination import MAX_MESSAGE, REASON_CODES, terminate
from connector.metering.store import UsageStore
from connector.web.agreements import service
from mesh.errors import InvalidRequest
from mesh.http_auth import ADMIN, NODE_ADMIN, NODE_READ, principal_of
from mesh.web.forms import field, read_form
from mesh.web.render import page, render

NODE_KEY = web.AppKey("agreements_node", object)
PER_PAGE = 25
DONE = ("terminated", "requested")


def node_of(request: web.Request) -> Any:
    return request.app[NODE_KEY]


def scope_of(request: web.Request) -> str:
    return principal_of(request).scope


def can_change(request: web.Request) -> bool:
    return principal_of(request).role == ADMIN


def q(part: str) -> str:
    return quote(part, safe="")


def page_number(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and 0 < len(raw) < 7 and int(raw) > 0):
        raise InvalidRequest("page must be a positive number", code="invalid_page",
                             message_ja="ページ番号は1以上の数です")
    return int(raw)


async def find(request: web.Request) -> AgreementRow:
    node = node_of(request)
    return await service.agreement(AgreementStore(node.contracts_db), request.match_info["id"],
                                   node.config.data_dir, scope_of(request),
                                   node.state.participant_id)


@page(NODE_READ)
async def agreements_list(request: web.Request) -> web.Response:
    node = node_of(request)
    filters = service.Filters.read(request.query)
    number = page_number(request)
    rows = await service.agreements(AgreementStore(node.contracts_db), node.config.data_dir,
                                    scope_of(request), node.state.participant_id, filters)
    pages = max(1, -(-len(rows) // PER_PAGE))
    return await render(request, "agreements/list.html", {
        "rows": rows[(number - 1) * PER_PAGE:number * PER_PAGE], "total": len(rows),
        "page": number, "pages": pages, "filters": filters, "states": STATES,
        "roles": service.ROLES})


@page(NODE_READ)
async def agreement_page(request: web.Request) -> web.Response:
    node = node_of(request)
    row = await find(request)
    info = await service.detail(row, UsageStore(node.metering_db), node.keystore,
                                node.state.identity_uri)
    done = request.query.get("done", "")
    return await render(request, "agreements/detail.html", {
        "d": info, "row": row, "x": info.explanation,
        "can_change": can_change(request), "done": done if done in DONE else "",
        "own": node.state.identity_uri,
        "transfers_url": "/admin/transfers/?" + urlencode({"agreement": row.id})})


@page(NODE_ADMIN)
async def terminate_confirm(request: web.Request, *, error: str = "", status: int = 200,
                            form: dict[str, str] | None = None) -> web.Response:
    row = await find(request)
    return await render(request, "agreements/terminate.html", {
        "row": row, "codes": list(REASON_CODES), "error": error, "max_message": MAX_MESSAGE,
        "form": form or {"code": "no_longer_needed", "message": ""}}, status=status)


@page(NODE_ADMIN)
async def terminate_post(request: web.Request) -> web.Response:
    row = await find(request)
    form = await read_form(request)
    code, message = field(form, "code"), field(form, "message")
    if row.state == "TERMINATED":
        raise web.HTTPSeeOther(f"/admin/agreements/{q(row.id)}")
    if code not in REASON_CODES or len(message) > MAX_MESSAGE:
        return await terminate_confirm(request, error="invalid", status=400,
                                       form={"code": code, "message": message})
    await terminate(node_of(request).config.data_dir, row.id, code, message)
    raise web.HTTPSeeOther(f"/admin/agreements/{q(row.id)}?done=terminated")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/agreements/", agreements_list)
    app.router.add_get("/admin/agreements/{id}", agreement_page)
    app.router.add_get("/admin/agreements/{id}/terminate", terminate_confirm)
    app.router.add_post("/admin/agreements/{id}/terminate", terminate_post)
