"""The registry's operator admin API (JSON under ``/api/v1/admin/``): participants and their
certification, shared-use hosting, join tokens, node revocation, participant API keys, and the
audit log of admin actions. Each handler calls ``AdminService`` as the CLI does; each route's
door (``operator-read``: admin or auditor; ``operator-admin``: admin only) is declared on it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mesh.errors import InvalidRequest, NotFound
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ, door, principal_of
from registry.operators.admin import AdminService
from registry.operators.api_keys import PARTICIPANT_KEY
from registry.operators.audit_log import Actor
from registry.operators.credentials import http_actor

ADMIN = web.AppKey("admin", AdminService)
MAX_TEXT = 500


def _actor(request: web.Request) -> Actor:
    return http_actor(request, principal_of(request))


async def _body(request: web.Request, required: tuple[str, ...] = (),
                optional: tuple[str, ...] = ()) -> dict[str, str]:
    """A JSON object of string fields: ``required`` ones non-empty, no others than named."""
    if not request.can_read_body:
        body: Any = {}
    else:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise InvalidRequest("the body must be a JSON object", code="invalid_json",
                                 message_ja="本文はJSONオブジェクトで送ってください") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", code="invalid_json",
                             message_ja="本文はJSONオブジェクトで送ってください")
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise InvalidRequest(f"unknown fields {unknown}", code="invalid_field",
                             message_ja=f"不明な項目です: {unknown}", details={"fields": unknown})
    for key, value in body.items():
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise InvalidRequest(f"'{key}' must be a string of at most {MAX_TEXT} characters",
                                 code="invalid_field", message_ja=f"{key} は文字列で指定してください",
                                 details={"field": key})
    for key in required:
        if not body.get(key):
            raise InvalidRequest(f"'{key}' is required", code="invalid_field",
                                 message_ja=f"{key} は必須です", details={"field": key})
    return body


def _limit(request: web.Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= high):
        raise InvalidRequest(f"{name} must be an integer from 1 to {high}", code="invalid_field",
                             message_ja=f"{name} は 1〜{high} の整数で指定してください")
    return int(text)


# ---- participants ----------------------------------------------------------------------------
@door(OPERATOR_READ)
async def list_participants(request: web.Request) -> web.Response:
    """Every participant, whatever its status, with its host and active nodes."""
    store = request.app[ADMIN].store
    nodes: dict[str, list[str]] = {}
    for n in await store.nodes():
        nodes.setdefault(n.participant_id, []).append(n.name)
    return web.json_response({"participants": [
        {"id": p.id, "name": p.name, "type": p.type, "status": p.status,
         "hosted_by": await store.host_of(p.id), "nodes": nodes.get(p.id, [])}
        for p in await store.participants()]}, dumps=_dumps)


@door(OPERATOR_ADMIN)
async def add_participant(request: web.Request) -> web.Response:
    body = await _body(request, ("id", "name", "type"))
    p = await request.app[ADMIN].add_participant(_actor(request), body["id"], body["name"],
                                                 body["type"])
    return web.json_response(_participant(p), status=201, dumps=_dumps)


@door(OPERATOR_ADMIN)
async def certify(request: web.Request) -> web.Response:
    p = await request.app[ADMIN].certify(_actor(request), request.match_info["id"])
    return web.json_response(_participant(p), dumps=_dumps)


@door(OPERATOR_ADMIN)
async def suspend(request: web.Request) -> web.Response:
    body = await _body(request, optional=("reason",))
    serials, number = await request.app[ADMIN].suspend(
        _actor(request), request.match_info["id"], body.get("reason") or "suspended by operator")
    return web.json_response({"id": request.match_info["id"], "status": "suspended",
                              "revoked_certificates": serials, "revocation_list": number})


@door(OPERATOR_ADMIN)
async def reinstate(request: web.Request) -> web.Response:
    admin = request.app[ADMIN]
    await admin.reinstate(_actor(request), request.match_info["id"])
    return web.json_response(_participant(await admin.store.participant(request.match_info["id"])),
                             dumps=_dumps)


# ---- participant API keys --------------------------------------------------------------------
@door(OPERATOR_READ)
async def list_participant_keys(request: web.Request) -> web.Response:
    admin = request.app[ADMIN]
    pid = request.match_info["id"]
    await admin.store.participant(pid)
    return web.json_response({"keys": [k.to_json() for k in
                                       await admin.keys.list(PARTICIPANT_KEY, pid)]}, dumps=_dumps)


@door(OPERATOR_ADMIN)
async def create_participant_key(request: web.Request) -> web.Response:
    """A new API key for the participant; the secret is in this answer only."""
    body = await _body(request, optional=("label",))
    key, secret = await request.app[ADMIN].create_key(
        _actor(request), PARTICIPANT_KEY, request.match_info["id"], body.get("label", ""))
    return web.json_response({**key.to_json(), "secret": secret}, status=201, dumps=_dumps)


@door(OPERATOR_ADMIN)
async def revoke_participant_key(request: web.Request) -> web.Response:
    key = await request.app[ADMIN].revoke_key(_actor(request), PARTICIPANT_KEY,
                                              request.match_info["key_id"])
    return web.json_response(key.to_json(), dumps=_dumps)


# ---- hosting, tokens, nodes ------------------------------------------------------------------
@door(OPERATOR_READ)
async def list_hosting(request: web.Request) -> web.Response:
    store = request.app[ADMIN].store
    rows = [{"tenant": p.id, "host": host} for p in await store.participants()
            if (host := await store.host_of(p.id))]
    return web.json_response({"hosting": rows})


@door(OPERATOR_ADMIN)
async def add_hosting(request: web.Request) -> web.Response:
    body = await _body(request, ("tenant", "host"))
    await request.app[ADMIN].add_hosting(_actor(request), body["tenant"], body["host"])
    return web.json_response({"tenant": body["tenant"], "host": body["host"]}, status=201)


@door(OPERATOR_ADMIN)
async def remove_hosting(request: web.Request) -> web.Response:
    admin, tenant = request.app[ADMIN], request.match_info["tenant"]
    host = await admin.store.host_of(tenant)
    if host is None:
        raise NotFound(f"{tenant} is not hosted", message_ja=f"{tenant} は共同利用されていません")
    await admin.remove_hosting(_actor(request), tenant, host)
    return web.json_response({"tenant": tenant, "host": None})


@door(OPERATOR_READ)
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[ADMIN].store.tokens(request.query.get("participant") or None)
    return web.json_response({"tokens": [t.to_json() for t in tokens]})


@door(OPERATOR_ADMIN)
async def create_token(request: web.Request) -> web.Response:
    """A one-time join token; its printed form is in this answer only."""
    body = await _body(request, ("participant",), ("ttl",))
    token = await request.app[ADMIN].create_token(_actor(request), body["participant"],
                                                  body.get("ttl") or "24h")
    return web.json_response({"id": token.token_id, "participant": body["participant"],
                              "token": str(token)}, status=201)


@door(OPERATOR_ADMIN)
async def revoke_token(request: web.Request) -> web.Response:
    await request.app[ADMIN].revoke_token(_actor(request), request.match_info["token_id"])
    return web.json_response({"id": request.match_info["token_id"], "state": "revoked"})


@door(OPERATOR_READ)
async def list_nodes(request: web.Request) -> web.Response:
    nodes = await request.app[ADMIN].store.nodes()
    return web.json_response({"nodes": [
        {"participant": n.participant_id, "participant_name": n.participant_name, "name": n.name,
         "endpoint": n.endpoint, "last_seen": n.last_seen.isoformat() if n.last_seen else None,
         "certificate_serial": n.cert_serial} for n in nodes]}, dumps=_dumps)


@door(OPERATOR_ADMIN)
async def revoke_node(request: web.Request) -> web.Response:
    body = await _body(request, optional=("reason",))
    pid, name = request.match_info["participant"], request.match_info["name"]
    serials, number = await request.app[ADMIN].revoke_node(
        _actor(request), pid, name, body.get("reason") or "revoked by operator")
    return web.json_response({"participant": pid, "name": name, "revoked_certificates": serials,
                              "revocation_list": number})


# ---- the operator and the audit log ----------------------------------------------------------
@door(OPERATOR_READ)
async def whoami(request: web.Request) -> web.Response:
    p = principal_of(request)
    return web.json_response({"name": p.id, "role": p.role, "credential": p.credential})


@door(OPERATOR_READ)
async def audit_log(request: web.Request) -> web.Response:
    """Admin actions, newest first (``?limit=``, ``?before=<seq>`` for the next page)."""
    limit = _limit(request, "limit", 100, 1000)
    before = _limit(request, "before", 0, 2**62) if "before" in request.query else None
    entries = await request.app[ADMIN].audit.entries(limit=limit, before=before)
    return web.json_response({"entries": [e.to_json() for e in entries]}, dumps=_dumps)


@door(OPERATOR_READ)
async def audit_log_verify(request: web.Request) -> web.Response:
    return web.json_response((await request.app[ADMIN].audit.verify()).to_json())


def _participant(p) -> dict[str, str]:
    return {"id": p.id, "name": p.name, "type": p.type, "status": p.status}


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def add_admin_routes(app: web.Application, admin: AdminService) -> None:
    app[ADMIN] = admin
    r = app.router
    r.add_get("/api/v1/admin/whoami", whoami)
    r.add_get("/api/v1/admin/participants", list_participants)
    r.add_post("/api/v1/admin/participants", add_participant)
    r.add_post("/api/v1/admin/participants/{id}/certify", certify)
    r.add_post("/api/v1/admin/participants/{id}/suspend", suspend)
    r.add_post("/api/v1/admin/participants/{id}/reinstate", reinstate)
    r.add_get("/api/v1/admin/participants/{id}/keys", list_participant_keys)
    r.add_post("/api/v1/admin/participants/{id}/keys", create_participant_key)
    r.add_post("/api/v1/admin/participant-keys/{key_id}/revoke", revoke_participant_key)
    r.add_get("/api/v1/admin/hosting", list_hosting)
    r.add_post("/api/v1/admin/hosting", add_hosting)
    r.add_delete("/api/v1/admin/hosting/{tenant}", remove_hosting)
    r.add_get("/api/v1/admin/tokens", list_tokens)
    r.add_post("/api/v1/admin/tokens", create_token)
    r.add_post("/api/v1/admin/tokens/{token_id}/revoke", revoke_token)
    r.add_get("/api/v1/admin/nodes", list_nodes)
    r.add_post("/api/v1/admin/nodes/{participant}/{name}/revoke", revoke_node)
    r.add_get("/api/v1/admin/audit-log", audit_log)
    r.add_get("/api/v1/admin/audit-log/verify", audit_log_verify)
