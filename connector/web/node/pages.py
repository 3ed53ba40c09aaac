"""The overview and node status pages. Thin: the figures come from the node's own objects
(``common.py``), the stores and ``PeerDirectory.ping`` (what ``/api/v1/peers?ping=1`` does)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict

from aiohttp import web

from connector.contracts.store import STATES, AgreementStore
from connector.datasets.store import PublisherStore
from connector.metering.store import UsageStore
from connector.web.node.common import (
    certificate_info,
    node_of,
    registry_info,
    revocation_info,
    scope_of,
    trust_bundle,
)
from mesh.http_auth import NODE_READ
from mesh.web.render import page, render

PING_TIMEOUT = 3.0


@page(NODE_READ)
async def console_home(request: web.Request) -> web.Response:
    node, scope = node_of(request), scope_of(request)
    data_dir = node.config.data_dir
    publishers = scope.publishers(data_dir)
    datasets = {pid: len(PublisherStore(data_dir, pid).list()) for pid in publishers}
    agreements = [a for a in await AgreementStore(node.contracts_db).list()
                  if scope.sees(a.role, a.dataset_id)]
    states = Counter(a.state for a in agreements)
    transfers = [t for t in await UsageStore(node.metering_db).list()
                 if scope.sees(t.role, t.dataset_id) and t.status == "running"]
    return await render(request, "console/home.html", {
        "state": node.state, "identity": node.state.identity_uri, "scope": scope,
        "tenants": [p for p in publishers if p != node.state.participant_id],
        "datasets": datasets, "dataset_total": sum(datasets.values()),
        "states": [(s, states.get(s, 0)) for s in STATES], "agreement_total": len(agreements),
        "running": len(transfers),
        "running_by_role": Counter(t.role for t in transfers),
        "cert": certificate_info(node), "crl": revocation_info(node),
        "registry": registry_info(node)})


@page(NODE_READ)
async def node_page(request: web.Request) -> web.Response:
    node, scope = node_of(request), scope_of(request)
    others = node.peers.others()
    pings = await asyncio.gather(*(node.peers.ping(n, timeout=PING_TIMEOUT)
                                   for n in others if n.endpoint))
    by_uri = {p.identity_uri: asdict(p) for p in pings}
    peers = [{"identity": n.identity_uri, "participant_id": n.participant_id,
              "participant_name": n.participant_name, "node_name": n.node_name,
              "endpoint": n.endpoint, "online": n.online, "ping": by_uri.get(n.identity_uri)}
             for n in others]
    subscriptions = [{"dataset_id": d, "version": v, "subscribers": n}
                     for d, v, n in node.watcher.watched() if scope.sees("provider", d)]
    return await render(request, "node/status.html", {
        "state": node.state, "identity": node.state.identity_uri, "advertise": node.advertise,
        "peers": peers, "peers_refreshed": node.peers.refreshed_at,
        "subscriptions": subscriptions, "watch_interval": f"{node.watcher.interval:g}",
        "cert": certificate_info(node), "crl": revocation_info(node),
        "registry": registry_info(node), "trust": trust_bundle(node)})
