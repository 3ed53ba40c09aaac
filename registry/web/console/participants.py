"""Participants: the list and the add form, a participant's page, certify, suspend (after a
confirmation page), reinstate, and shared-use hosting (add, remove after confirmation).

Each change calls ``AdminService`` as the JSON admin API and the CLI do, with the signed-in
operator as the audit log's actor. The add form refuses an id the way the CLI does (the check
digits of mesh/ids.py, through the store) and shows the message next to the field, the typed
values kept, with status 400.
"""

from __future__ import annotations

from aiohttp import web

from mesh.errors import AreameshError, Conflict, NotFound
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.ids import ParticipantType
from mesh.web.forms import field, read_form
from mesh.web.render import page
from registry.catalog.textnorm import normalise
from registry.store import Participant
from registry.web.console.common import (
    MAX_REASON,
    actor,
    console,
    done,
    html_or_raise,
    message_of,
    names,
    q,
    show,
)

TYPES = [t.value for t in ParticipantType]


PER_PAGE = 50
STATUSES = ("pending", "certified", "suspended")


def matches(p: Participant, folded_query: str) -> bool:
    """A participant answers a search by its id (from the start), its name or its reading, in
    either kana and either width (ひめじ, ヒメジ and ﾋﾒｼﾞ all find 姫路市)."""
    return p.id.startswith(folded_query) or any(
        folded_query in normalise(text) for text in (p.name, p.reading or "") if text)


async def _list(request: web.Request, form: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    """The participants, searched (``q``), filtered by status and type, 50 to a page: with every
    local government of the country imported, the list is 1,788 long."""
    store = console(request).store
    query = request.query.get("q", "").strip()[:100]
    wanted_status = request.query.get("status", "")
    wanted_type = request.query.get("type", "")
    nodes: dict[str, int] = {}
    for n in await store.nodes():
        nodes[n.participant_id] = nodes.get(n.participant_id, 0) + 1
    everyone = await names(store)
    hosts = await store.hosts()
    folded = normalise(query)
    listed = [p for p in everyone.values()
              if (not folded or matches(p, folded))
              and (wanted_status not in STATUSES or p.status == wanted_status)
              and (wanted_type not in TYPES or p.type == wanted_type)]
    pages = max(1, -(-len(listed) // PER_PAGE))
    try:
        page_no = min(max(1, int(request.query.get("page", "1"))), pages)
    except ValueError:
        page_no = 1
    shown = listed[(page_no - 1) * PER_PAGE:page_no * PER_PAGE]
    rows = [{"p": p, "host": everyone.get(hosts[p.id]) if p.id in hosts else None,
             "nodes": nodes.get(p.id, 0)} for p in shown]
    return await show(request, "console/participants.html", {
        "rows": rows, "types": TYPES, "statuses": STATUSES,
        "filters": {"q": query, "status": wanted_status, "type": wanted_type},
        "total": len(everyone), "matched": len(listed), "page": page_no, "pages": pages,
        "first": (page_no - 1) * PER_PAGE + 1 if shown else 0,
        "last": (page_no - 1) * PER_PAGE + len(shown),
        "form": form or {"id": "", "name": "", "type": "municipality"},
        "errors": errors or {}}, status=status)


@page(OPERATOR_READ)
async def participants(request: web.Request) -> web.Response:
    return await _list(request)


@page(OPERATOR_ADMIN)
async def add_participant(request: web.Request) -> web.Response:
    form = await read_form(request)
    values = {k: field(form, k) for k in ("id", "name", "type")}
    try:
        await console(request).admin.add_participant(actor(request), values["id"],
                                                      values["name"], values["type"])
    except AreameshError as exc:
        html_or_raise(request, exc)
        where = "id" if exc.code == "invalid_participant_id" or isinstance(exc, Conflict) \
            else "type" if values["type"] not in TYPES else "form"
        return await _list(request, values, {where: message_of(request, exc)},
                           status=exc.http_status)
    raise done(f"/admin/participants/{q(values['id'])}", "participant_added")


@page(OPERATOR_READ)
async def participant(request: web.Request) -> web.Response:
    store = console(request).store
    p = await store.participant(request.match_info["id"])
    everyone = await names(store)
    host = await store.host_of(p.id)
    return await show(request, "console/participant.html", {
        "p": p, "host": everyone.get(host) if host else None,
        "tenants": [everyone[t] for t in await store.tenants_of(p.id) if t in everyone],
        "candidates": [c for c in everyone.values() if c.id != p.id],
        "nodes": await store.nodes(p.id, include_revoked=True),
        "tokens": await store.tokens(p.id)})


@page(OPERATOR_ADMIN)
async def certify(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    await console(request).admin.certify(actor(request), pid)
    raise done(f"/admin/participants/{q(pid)}", "certified")


@page(OPERATOR_READ)
async def suspend_confirm(request: web.Request) -> web.Response:
    store = console(request).store
    p = await store.participant(request.match_info["id"])
    return await show(request, "console/confirm_suspend.html",
                      {"p": p, "nodes": await store.nodes(p.id)})


@page(OPERATOR_ADMIN)
async def suspend(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    reason = field(await read_form(request), "reason")[:MAX_REASON] or "suspended by operator"
    await console(request).admin.suspend(actor(request), pid, reason)
    raise done(f"/admin/participants/{q(pid)}", "suspended")


@page(OPERATOR_ADMIN)
async def reinstate(request: web.Request) -> web.Response:
    pid = request.match_info["id"]
    await console(request).admin.reinstate(actor(request), pid)
    raise done(f"/admin/participants/{q(pid)}", "reinstated")


@page(OPERATOR_ADMIN)
async def add_hosting(request: web.Request) -> web.Response:
    form = await read_form(request)
    tenant, host = field(form, "tenant"), field(form, "host")
    await console(request).admin.add_hosting(actor(request), tenant, host)
    raise done(f"/admin/participants/{q(tenant)}", "hosting_added")


async def _hosting(request: web.Request) -> tuple[str, str]:
    store, tenant = console(request).store, request.match_info["tenant"]
    await store.participant(tenant)
    host = await store.host_of(tenant)
    if host is None:
        raise NotFound(f"{tenant} is not hosted", message_ja=f"{tenant} は共同利用されていません")
    return tenant, host


@page(OPERATOR_READ)
async def remove_hosting_confirm(request: web.Request) -> web.Response:
    tenant, host = await _hosting(request)
    everyone = await names(console(request).store)
    return await show(request, "console/confirm_hosting.html",
                      {"tenant": everyone[tenant], "host": everyone.get(host)})


@page(OPERATOR_ADMIN)
async def remove_hosting(request: web.Request) -> web.Response:
    tenant, host = await _hosting(request)
    await console(request).admin.remove_hosting(actor(request), tenant, host)
    raise done(f"/admin/participants/{q(tenant)}", "hosting_removed")


def add_participant_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/participants", participants)
    r.add_post("/admin/participants", add_participant)
    r.add_get("/admin/participants/{id}", participant)
    r.add_post("/admin/participants/{id}/certify", certify)
    r.add_get("/admin/participants/{id}/suspend/confirm", suspend_confirm)
    r.add_post("/admin/participants/{id}/suspend", suspend)
    r.add_post("/admin/participants/{id}/reinstate", reinstate)
    r.add_post("/admin/hosting", add_hosting)
    r.add_get("/admin/hosting/{tenant}/remove/confirm", remove_hosting_confirm)
    r.add_post("/admin/hosting/{tenant}/remove", remove_hosting)
