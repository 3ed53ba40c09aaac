"""The console's overview (``/admin/``) and node status (``/admin/node/``): who this node is,
its certificate, revocation list, registry contact, peers and subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.web.node.common import OPS
from connector.web.node.pages import console_home, node_page

if TYPE_CHECKING:
    from connector.app import ConnectorApp


def add_node_pages(app: web.Application, node: ConnectorApp) -> None:
    app[OPS] = node
    app.router.add_get("/admin/", console_home)
    app.router.add_get("/admin/node/", node_page)
