"""The connector's admin HTTP API: health, status, peers, metrics, the resident portal's
routes (``connector/portal_api.py``), the NGSI v2 broker notifications
(``connector/subscriptions/orion_http.py``) and the NGSI-LD facade for the node's own apps
(``connector/ngsi_ld/facade.py``). Bind it to loopback or an admin network; it is not
exposed to the mesh. Status and peers are for the node's operator (``DATA_DIR/operator.key``);
each handler declares its door (``mesh.http_auth``), docs/security.md has the table."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import TYPE_CHECKING

from aiohttp import web

from connector.contracts.store import AgreementStore
from connector.credentials import ConnectorAuthenticator
from connector.ngsi_ld.problems import problem_middleware
from connector.openapi import OPENAPI
from connector.operators.accounts import ConsoleAccounts
from connector.portal_api import ResidentPortalApi
from connector.subscriptions.orion_http import add_routes as add_orion_routes
from connector.web.pages import add_connector_pages
from connector.web.site import setup_connector_web
from mesh.certs import load_pem_bundle, remaining_fraction
from mesh.http import error_middleware, metrics
from mesh.http_auth import NODE_ADMIN, PUBLIC, check_doors, door, door_middleware
from mesh.web.render import page_errors
from mesh.web.sessions import SessionStore

if TYPE_CHECKING:
    from connector.app import ConnectorApp

NODE = web.AppKey("node", object)


@door(PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    """200 ``{"status": "ok"}``; 503 with the reason and since when while the node refuses peer
    calls (registry unreachable past the revocation list's grace: ``Maintenance.health``)."""
    node: ConnectorApp = request.app[NODE]
    health = node.maintenance.health()
    return web.json_response({**health, "identity": node.state.identity_uri},
                             status=200 if health["status"] == "ok" else 503)


@door(PUBLIC)
async def livez(request: web.Request) -> web.Response:
    """200 while the process serves HTTP: what a liveness probe asks (restarting a node does not
    bring its registry back, so /healthz's 503 must not trigger restarts)."""
    return web.json_response({"status": "alive"})


@door(NODE_ADMIN)
async def status(request: web.Request) -> web.Response:
    node: ConnectorApp = request.app[NODE]
    cert = node.keystore.certificate()
    m = node.maintenance
    return web.json_response({
        "identity": node.state.identity_uri,
        "participant": {"id": node.state.participant_id, "name": node.state.participant_name},
        "mesh_id": node.state.mesh_id,
        "grpc_port": node.grpc_port,
        "advertise": node.advertise,
        "certificate": {"serial": format(cert.serial_number, "x"),
                        "not_after": cert.not_valid_after_utc.isoformat(),
                        "remaining_fraction": round(remaining_fraction(cert), 4),
                        "renewals": m.renewals},
        "registry": {"address": node.registry.address,
                     "last_heartbeat": m.last_heartbeat.isoformat() if m.last_heartbeat else None,
                     "last_error": m.last_error,
                     "unreachable_since": m.unreachable_since.isoformat()
                     if m.unreachable_since else None},
        "revocation_list": {
            "number": node.crl.number,
            "next_update": node.crl.next_update.isoformat() if node.crl.next_update else None,
            "usable_until": u.isoformat() if (u := node.crl.usable_until()) else None},
    })


@door(NODE_ADMIN)
async def peers(request: web.Request) -> web.Response:
    """The mesh's nodes as the registry lists them; ``?ping=1`` also pings each online peer."""
    node: ConnectorApp = request.app[NODE]
    others = node.peers.others()
    results = {}
    if request.query.get("ping") in ("1", "true"):
        pings = await asyncio.gather(*(node.peers.ping(n) for n in others if n.endpoint))
        results = {p.identity_uri: asdict(p) for p in pings}
    return web.json_response({"self": node.state.identity_uri, "peers": [
        {"identity": n.identity_uri, "participant_id": n.participant_id,
         "participant_name": n.participant_name, "node_name": n.node_name,
         "endpoint": n.endpoint, "online": n.online, "ping": results.get(n.identity_uri)}
        for n in others]})


@door(PUBLIC)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI)


def build_http_app(node: ConnectorApp) -> web.Application:
    sessions = SessionStore(node.console_db)
    accounts = ConsoleAccounts(node.console_db)
    doors = door_middleware(ConnectorAuthenticator(node.config.data_dir, node.state.identity_uri,
                                                   sessions, accounts))
    app = web.Application(middlewares=[error_middleware, page_errors, problem_middleware, doors],
                          client_max_size=1024 * 1024)
    app[NODE] = node
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/status", status)
    app.router.add_get("/api/v1/peers", peers)
    app.router.add_get("/openapi.json", openapi)
    ResidentPortalApi(node.config.data_dir, node.data_plane).add_routes(app)
    add_orion_routes(app, node.config.data_dir, lambda: node.watcher)
    # imported here: the facade's views and geo-queries load pyarrow and shapely, which a CLI
    # call importing connector.app must not (tests/test_footprint.py)
    from connector.ngsi_ld.facade import NgsiLdFacade
    from connector.ngsi_ld.keys import FacadeKeys
    from connector.ngsi_ld.views import FacadeData

    NgsiLdFacade(FacadeData(node.config.data_dir, lambda: AgreementStore(node.contracts_db),
                            lambda: load_pem_bundle(node.keystore.trust_bundle_pem())),
                 FacadeKeys(node.config.data_dir)).add_routes(app)
    setup_connector_web(app, sessions, accounts)
    add_connector_pages(app, node)
    check_doors(app)
    return app
