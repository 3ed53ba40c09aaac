"""Nodes: endpoint, last heartbeat, certificate expiry and software version of every node,
and revoking one (after a confirmation page): its certificates go on a new revocation list at
once, and the registry refuses them from then on."""

from __future__ import annotations

from aiohttp import web

from mesh.errors import NotFound
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.web.forms import field, read_form
from mesh.web.render import page
from registry.store import NodeRow
from registry.web.console.common import actor, console, done, names, show

MAX_REASON = 500


@page(OPERATOR_READ)
async def nodes(request: web.Request) -> web.Response:
    store = console(request).store
    return await show(request, "console/nodes.html", {
        "nodes": await store.nodes(include_revoked=True), "names": await names(store)})


async def _node(request: web.Request) -> NodeRow:
    pid, name = request.match_info["participant"], request.match_info["name"]
    for n in await console(request).store.nodes(pid, include_revoked=True):
        if n.name == name:
            return n
    raise NotFound(f"unknown node {name} of participant {pid}",
                   message_ja=f"ノード {pid}/{name} は登録されていません")


@page(OPERATOR_READ)
async def revoke_confirm(request: web.Request) -> web.Response:
    return await show(request, "console/confirm_node.html", {"n": await _node(request)})


@page(OPERATOR_ADMIN)
async def revoke(request: web.Request) -> web.Response:
    pid, name = request.match_info["participant"], request.match_info["name"]
    reason = field(await read_form(request), "reason")[:MAX_REASON] or "revoked by operator"
    await console(request).admin.revoke_node(actor(request), pid, name, reason)
    raise done("/admin/nodes", "node_revoked")


def add_node_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/nodes", nodes)
    r.add_get("/admin/nodes/{participant}/{name}/revoke/confirm", revoke_confirm)
    r.add_post("/admin/nodes/{participant}/{name}/revoke", revoke)
