"""``GET /api/v1/duties``: the duties of every notarised agreement, for the operating organisation.

Operators only (admin or auditor, ``docs/security.md``): it shows which participant owes which
duty to which.

Query: ``state`` (pending, fulfilled, overdue) keeps one state, e.g. ``?state=overdue``.
"""

from __future__ import annotations

from aiohttp import web

from mesh.http_auth import OPERATOR_READ, door
from registry.duties import DutyRegister
from registry.store import RegistryStore

STORE = web.AppKey("duties_store", RegistryStore)


@door(OPERATOR_READ)
async def list_duties(request: web.Request) -> web.Response:
    state = request.query.get("state")
    duties = await DutyRegister(request.app[STORE].db).list(state=state)
    return web.json_response({"duties": [d.to_json() for d in duties], "total": len(duties)})


def add_duties_routes(app: web.Application, store: RegistryStore) -> None:
    app[STORE] = store
    app.router.add_get("/api/v1/duties", list_duties)
