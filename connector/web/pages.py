"""All of the connector's pages, by area (``console/``, ``portal/``); each area has its own
handlers, templates (``templates/<area>/``) and messages (``messages/<area>.yaml``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from connector.app import ConnectorApp


def add_connector_pages(app: web.Application, node: ConnectorApp) -> None:
    # Imported here, not at the top: the console's dataset and transfer areas use the data
    # plane's modules (pyarrow, numpy), which a CLI call importing connector.app must not load
    # (tests/test_footprint.py). A serving connector loads them when it builds its HTTP app.
    from connector.web.agreements import add_agreements_pages
    from connector.web.catalog import add_catalog_pages
    from connector.web.datasets import add_datasets_pages
    from connector.web.node import add_node_pages
    from connector.web.portal import add_portal_pages
    from connector.web.transfers import add_transfers_pages

    add_node_pages(app, node)          # the overview at /admin/ and /admin/node/
    add_transfers_pages(app, node)
    add_datasets_pages(app, node)
    add_agreements_pages(app, node)
    add_catalog_pages(app, node)
    add_portal_pages(app, node)
