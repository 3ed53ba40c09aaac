"""Joining and leaving the mesh: join tokens (the list, state only and never a secret; creating
one; revoking an unused one after confirmation) and nodes (endpoint, last heartbeat, certificate
expiry, software version; revoking one after confirmation, which puts its certificates on a new
revocation list at once, so the registry refuses them from then on).

A created token is shown once, in the answer to the POST that made it (the registry keeps only
its hash), with the exact ``areamesh connector join`` command to run on the connector host.
That command names the registry's gRPC and enrolment addresses as they are bound (port 0
resolved at start, registry/app.py); a wildcard bind address (0.0.0.0, ::) is replaced by the
host name this page was requested under.
"""

from __future__ import annotations

import shlex

from aiohttp import web

from mesh.config import parse_hostport
from mesh.errors import AreameshError, NotFound
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.web.forms import field, read_form
from mesh.web.render import page
from registry.store import NodeRow, TokenRow
from registry.web.console.common import (
    MAX_REASON,
    actor,
    console,
    done,
    html_or_raise,
    message_of,
    names,
    show,
)

WILDCARDS = {"0.0.0.0", "::", "*", ""}
DATA_DIR = "/var/lib/areamesh/connector"
NODE_NAME = "main"


def public_address(request: web.Request, listen: str) -> str:
    """HOST:PORT a connector dials: the bound host, or this page's host for a wildcard."""
    host, port = parse_hostport(listen, what="address")
    if host in WILDCARDS:
        host = request.url.host or "localhost"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def join_command(request: web.Request, token: str) -> str:
    config = console(request).config
    return shlex.join(["areamesh", "connector", "join", "--data-dir", DATA_DIR,
                       "--registry", public_address(request, config.grpc_listen),
                       "--enrol", public_address(request, config.enrol_listen),
                       "--token", token, "--name", NODE_NAME])


# ---- join tokens -----------------------------------------------------------------------------
async def _tokens_page(request: web.Request, form: dict[str, str] | None = None,
                       errors: dict[str, str] | None = None, status: int = 200) -> web.Response:
    store = console(request).store
    everyone = await names(store)
    return await show(request, "console/tokens.html", {
        "tokens": await store.tokens(), "names": everyone,
        "candidates": [p for p in everyone.values() if p.status != "suspended"],
        "form": form or {"participant": request.query.get("participant", ""), "ttl": "24h"},
        "errors": errors or {}}, status=status)


@page(OPERATOR_READ)
async def tokens(request: web.Request) -> web.Response:
    return await _tokens_page(request)


@page(OPERATOR_ADMIN)
async def create_token(request: web.Request) -> web.Response:
    form = await read_form(request)
    values = {"participant": field(form, "participant"), "ttl": field(form, "ttl") or "24h"}
    c = console(request)
    try:
        token = await c.admin.create_token(actor(request), values["participant"], values["ttl"])
    except AreameshError as exc:
        html_or_raise(request, exc)
        where = "ttl" if exc.code in ("invalid_ttl", "invalid_request") else "participant"
        return await _tokens_page(request, values, {where: message_of(request, exc)},
                                  status=exc.http_status)
    p = await c.store.participant(values["participant"])
    row = next(t for t in await c.store.tokens(p.id) if t.id == token.token_id)
    return await show(request, "console/token_created.html", {
        "p": p, "row": row, "token": str(token), "command": join_command(request, str(token))},
        status=201)


async def _token(request: web.Request) -> TokenRow:
    token_id = request.match_info["token_id"]
    for row in await console(request).store.tokens():
        if row.id == token_id:
            return row
    raise NotFound(f"unknown join token {token_id}", code="token_unknown",
                   message_ja=f"参加トークン {token_id} は存在しません")


@page(OPERATOR_READ)
async def token_revoke_confirm(request: web.Request) -> web.Response:
    row = await _token(request)
    everyone = await names(console(request).store)
    return await show(request, "console/confirm_token.html",
                      {"row": row, "p": everyone.get(row.participant_id)})


@page(OPERATOR_ADMIN)
async def token_revoke(request: web.Request) -> web.Response:
    await console(request).admin.revoke_token(actor(request), request.match_info["token_id"])
    raise done("/admin/tokens", "token_revoked")


# ---- nodes -----------------------------------------------------------------------------------
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
async def node_revoke_confirm(request: web.Request) -> web.Response:
    return await show(request, "console/confirm_node.html", {"n": await _node(request)})


@page(OPERATOR_ADMIN)
async def node_revoke(request: web.Request) -> web.Response:
    pid, name = request.match_info["participant"], request.match_info["name"]
    reason = field(await read_form(request), "reason")[:MAX_REASON] or "revoked by operator"
    await console(request).admin.revoke_node(actor(request), pid, name, reason)
    raise done("/admin/nodes", "node_revoked")


def add_enrolment_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/tokens", tokens)
    r.add_post("/admin/tokens", create_token)
    r.add_get("/admin/tokens/{token_id}/revoke/confirm", token_revoke_confirm)
    r.add_post("/admin/tokens/{token_id}/revoke", token_revoke)
    r.add_get("/admin/nodes", nodes)
    r.add_get("/admin/nodes/{participant}/{name}/revoke/confirm", node_revoke_confirm)
    r.add_post("/admin/nodes/{participant}/{name}/revoke", node_revoke)
