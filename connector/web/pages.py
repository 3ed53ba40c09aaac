"""All of the connector's pages, by area (``console/``, ``portal/``); each area has its own
handlers, templates (``templates/<area>/``) and messages (``messages/<area>.yaml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.web.agreements import add_agreements_pages
from connector.web.catalog import add_catalog_pages
from mesh.http_auth import NODE_READ
from mesh.web.render import page, render

if TYPE_CHECKING:
    from connector.app import ConnectorApp


@page(NODE_READ)
async def console_home(request: web.Request) -> web.Response:
    return await render(request, "console/home.html")


def add_connector_pages(app: web.Application, node: ConnectorApp) -> None:
    app.router.add_get("/admin/", console_home)
    add_agreements_pages(app, node)
    add_catalog_pages(app, node)
