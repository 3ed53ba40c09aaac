"""``GET /api/v1/duties``: the duties of every notarised agreement, for the operating organisation.

OPERATOR ONLY: it shows which participant owes which duty to which. It lives in its own module so
it can be put behind the operator door (``docs/security.md``) in one place; until then it is
registered by ``registry/http_api.py`` like the other operator routes (usage, ledger audit).

Query: ``state`` (pending, fulfilled, overdue) keeps one state, e.g. ``?state=overdue``.
"""

from __future__ import annotations

from aiohttp import web

from registry.duties import DutyRegister
from registry.store import RegistryStore

STORE = web.AppKey("duties_store", RegistryStore)


async def list_duties(request: web.Request) -> web.Response:
    state = request.query.get("state")
    duties = await DutyRegister(request.app[STORE].db).list(state=state)
    return web.json_response({"duties": [d.to_json() for d in duties], "total": len(duties)})


def add_duties_routes(app: web.Application, store: RegistryStore) -> None:
    app[STORE] = store
    app.router.add_get("/api/v1/duties", list_duties)
