"""``GET /api/v1/datamap``: the data map as JSON — the guidebook's two tables (headers and
rows), the registered services, the flows and the graph.

Door ``participant-own``: the guidebook treats the data map as information shared among the
participants (情報共有や比較検討の材料), so a participant's API key reads the whole map — every
service, dataset and flow — but records, bytes and transfers only of the flows it is a party
to; an operator (admin, auditor) sees every figure. It is not public: who exchanges what with
whom is for the mesh's members.

Query: ``period`` (YYYY, YYYY-MM, YYYY-MM-DD, FROM..TO in JST) limits the metered figures to it;
without it, all time.
"""

from __future__ import annotations

import json

from aiohttp import web

from mesh.http_auth import OWN_FIGURES, PARTICIPANT, door, principal_of
from registry.datamap.build import DataMapBuilder
from registry.metering.usage import parse_period
from registry.store import RegistryStore

STORE = web.AppKey("datamap_store", RegistryStore)


@door(OWN_FIGURES)
async def get_datamap(request: web.Request) -> web.Response:
    period = request.query.get("period")
    caller = principal_of(request)
    m = await DataMapBuilder(request.app[STORE]).build(
        parse_period(period) if period is not None else None,
        viewer=caller.id if caller.kind == PARTICIPANT else None)
    return web.json_response(m.to_json(), dumps=lambda o: json.dumps(o, ensure_ascii=False))


def add_datamap_routes(app: web.Application, store: RegistryStore) -> None:
    app[STORE] = store
    app.router.add_get("/api/v1/datamap", get_datamap)
