"""The consumer side of the connector console (``/admin/catalog/``): search the registry's
catalog through the node's registry client (mTLS gRPC), a dataset's page with its offers and
policies, and a contract request that runs the CLI's negotiation (``contract request``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.web.agreements.routes import NODE_KEY
from connector.web.catalog.routes import add_routes

if TYPE_CHECKING:
    from connector.app import ConnectorApp


def add_catalog_pages(app: web.Application, node: ConnectorApp) -> None:
    app[NODE_KEY] = node
    add_routes(app)
