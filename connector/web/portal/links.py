"""「ID連携」: the ids other platforms issued to the signed-in resident that the registry's
identity service links to this platform's id, with their assurance levels; unlink.

The identity service never tells a platform another platform's local id: for each other
platform of the mesh, ``CheckTransferLevels`` answers whether the same person has an id there
and its levels (身元確認レベル IAL, 当人認証レベル AAL). Unlinking removes this platform's id
from the person, proven by a fresh unlink assertion this node signs as the platform's identity
provider right after the resident confirmed (the resident is signed in; their id is the
session's). The other platforms' ids stay linked with each other.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from connector.web.portal.data import participant_names, resident_of
from mesh.errors import NotFound, Unavailable
from mesh.http_auth import RESIDENT_SELF
from mesh.identity_assertions import issue_assertion
from mesh.keystore import NodeKeyStore
from mesh.web.forms import read_form
from mesh.web.render import page, render

if TYPE_CHECKING:
    from connector.app import ConnectorApp

log = logging.getLogger("areamesh.connector.portal")


async def linked_ids(node: ConnectorApp, request: web.Request, resident: str) -> dict[str, Any]:
    """This platform's id's levels and, per other platform, whether the person has an id there."""
    try:
        own = await node.registry.identity_levels(resident)
    except NotFound:
        return {"own": None, "others": []}
    names = await participant_names(request, node)
    others = []
    for pid in sorted(p for p in names if p != node.state.participant_id):
        try:
            [levels] = await node.registry.transfer_levels(pid, [resident])
        except NotFound:            # not an identity provider's platform: no ids there
            continue
        if levels.linked:
            others.append({"platform": pid, "name": names[pid], "ial": levels.target_ial,
                           "aal": levels.target_aal})
    return {"own": own, "others": others}


def add_routes(app: web.Application, node: ConnectorApp) -> None:
    async def show(request: web.Request, template: str, **values: Any) -> web.Response:
        try:
            found = await linked_ids(node, request, resident_of(request))
            unavailable = False
        except Unavailable as exc:
            log.warning("identity links unavailable: %s", exc)
            found, unavailable = {"own": None, "others": []}, True
        return await render(request, template, {**found, "unavailable": unavailable,
                                                "names": await participant_names(request, node),
                                                "self_id": node.state.participant_id, **values})

    @page(RESIDENT_SELF)
    async def links(request: web.Request) -> web.Response:
        done = request.query.get("done", "")
        return await show(request, "portal/links.html", done=done == "unlinked")

    @page(RESIDENT_SELF)
    async def unlink_confirm(request: web.Request) -> web.Response:
        return await show(request, "portal/unlink_confirm.html")

    @page(RESIDENT_SELF)
    async def unlink(request: web.Request) -> web.StreamResponse:
        await read_form(request)
        resident = resident_of(request)
        own = await node.registry.identity_levels(resident)      # NotFound: nothing to unlink
        assertion = issue_assertion(NodeKeyStore(node.config.data_dir / "tls"), local_id=resident,
                                    ial=min(max(own.asserted_ial, 1), 3),
                                    aal=min(max(own.asserted_aal, 1), 3), purpose="unlink")
        reply = await node.registry.unlink_identity(resident, assertion.dumps().encode())
        log.info("resident %s unlinked their id from %d other ids", resident, reply.remaining)
        raise web.HTTPSeeOther("/portal/links?done=unlinked")

    app.router.add_get("/portal/links", links)
    app.router.add_get("/portal/links/unlink", unlink_confirm)
    app.router.add_post("/portal/links/unlink", unlink)
