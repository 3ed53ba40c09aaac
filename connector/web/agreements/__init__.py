"""The connector console's agreements (``/admin/agreements/``): the list with filters, one
agreement's page (signed document, notarisation, policy, usage against its limits, why it
ended) and termination after a confirmation page, through the services the CLI uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.web.agreements.routes import NODE_KEY, add_routes

if TYPE_CHECKING:
    from connector.app import ConnectorApp

__all__ = ["NODE_KEY", "add_agreements_pages"]


def add_agreements_pages(app: web.Application, node: ConnectorApp) -> None:
    app[NODE_KEY] = node
    add_routes(app)
