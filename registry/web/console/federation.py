"""Federation with other meshes at ``/admin/federation`` (docs/federation.md): this mesh's id and
CA fingerprint, the federations with their state, and for an admin: add one by uploading the other
mesh's document, remove one after a confirmation page. Every change goes through
``FederationAdmin`` (as the CLI), so it lands in the audit log; refusals are shown on the form."""

from __future__ import annotations

from aiohttp import web

from mesh.errors import AreameshError, InvalidRequest
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.web.forms import read_form, read_upload
from mesh.web.render import page
from registry.federation.admin import FederationAdmin
from registry.web.console.common import actor, console, done, html_or_raise, message_of, show


def _admin(request: web.Request) -> FederationAdmin:
    c = console(request)
    return FederationAdmin(c.store, c.admin.ca)


async def _render(request: web.Request, *, error: str = "", status: int = 200) -> web.Response:
    admin = _admin(request)
    return await show(request, "console/federation.html", {
        "mesh_id": admin.ca.mesh_id, "fingerprint": admin.ca.fingerprint,
        "federations": await admin.list(), "error": error}, status=status)


@page(OPERATOR_READ)
async def federations(request: web.Request) -> web.Response:
    return await _render(request)


@page(OPERATOR_ADMIN)
async def add(request: web.Request) -> web.Response:
    await read_form(request, files=("document",))
    upload = await read_upload(request, "document")
    try:
        if upload is None:
            raise InvalidRequest("choose the other mesh's federation document (JSON)",
                                 message_ja="相手メッシュの連携文書（JSON）を選んでください",
                                 code="federation_no_file")
        await _admin(request).add(actor(request), upload.data)
    except AreameshError as exc:
        html_or_raise(request, exc)
        return await _render(request, error=f"{message_of(request, exc)} ({exc.code})",
                             status=exc.http_status)
    raise done("/admin/federation", "federation_added")


@page(OPERATOR_READ)
async def confirm_remove(request: web.Request) -> web.Response:
    f = await _admin(request).federations.get(request.match_info["mesh"])
    return await show(request, "console/confirm_federation.html", {"f": f})


@page(OPERATOR_ADMIN)
async def remove(request: web.Request) -> web.Response:
    await read_form(request)
    await _admin(request).remove(actor(request), request.match_info["mesh"])
    raise done("/admin/federation", "federation_removed")


def add_federation_pages(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/federation", federations)
    r.add_post("/admin/federation", add)
    r.add_get("/admin/federation/{mesh}/remove", confirm_remove)
    r.add_post("/admin/federation/{mesh}/remove", remove)
