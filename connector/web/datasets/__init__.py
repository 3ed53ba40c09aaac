"""The connector console's datasets and offers (``/admin/datasets/``): list, add from a form or
a YAML upload, preview through a mapping, publish, refresh, withdraw, and offers built from a
form and shown in plain words before they are saved."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.contracts.store import AgreementStore
from connector.web.datasets.routes import SERVICE, add_routes
from connector.web.datasets.service import ConsoleDatasets
from mesh.ids import parse_node_identity_uri

if TYPE_CHECKING:
    from connector.app import ConnectorApp


def add_datasets_pages(app: web.Application, node: ConnectorApp) -> None:
    def participant() -> str:          # asked when a page needs it, not when routes are built
        return (parse_node_identity_uri(node.state.identity_uri) or ("", ""))[0]

    app[SERVICE] = ConsoleDatasets(node.config.data_dir, participant,
                                   lambda: AgreementStore(node.contracts_db))
    add_routes(app)
