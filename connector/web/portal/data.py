"""「わたしのデータ」 and 「どこに提供されたか」: the signed-in resident's records here and the
flow ledger's account of where they went. The resident id is the session's, nothing else."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from aiohttp import web

from connector.portal_api import datasets_holding
from mesh.errors import AreameshError
from mesh.http_auth import RESIDENT_SELF, principal_of
from mesh.web.render import page, render

if TYPE_CHECKING:
    from connector.app import ConnectorApp

log = logging.getLogger("areamesh.connector.portal")
NAMES = web.AppKey("portal_participant_names", object)
NAMES_TTL = 300.0


def resident_of(request: web.Request) -> str:
    """The signed-in resident (the session's subject; the door admitted only residents)."""
    return principal_of(request).id


async def participant_names(request: web.Request, node: ConnectorApp) -> dict[str, str]:
    """Participant id → name, from the registry's directory (public facts, cached a few
    minutes); empty when the registry cannot be reached (pages then show the ids)."""
    cached = request.app.get(NAMES)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    try:
        nodes = await node.registry.list_nodes()
    except AreameshError as exc:
        log.info("participant names unavailable: %s", exc)
        return {}
    names = {n.participant_id: n.participant_name for n in nodes}
    request.app[NAMES] = (time.monotonic() + NAMES_TTL, names)
    return names


def add_routes(app: web.Application, node: ConnectorApp) -> None:
    @page(RESIDENT_SELF)
    async def my_data(request: web.Request) -> web.Response:
        held = await datasets_holding(node.config.data_dir, resident_of(request))
        return await render(request, "portal/data.html", {
            "datasets": held, "names": await participant_names(request, node) if held else {}})

    @page(RESIDENT_SELF)
    async def flows(request: web.Request) -> web.Response:
        _, ledger = await node.data_plane.personal()
        found = await ledger.flows_for(resident_of(request))
        found.sort(key=lambda f: f.last_at, reverse=True)       # newest first
        return await render(request, "portal/flows.html", {
            "flows": found, "names": await participant_names(request, node) if found else {}})

    app.router.add_get("/portal/data", my_data)
    app.router.add_get("/portal/flows", flows)
