"""JSON API of complete metering: figures per organisation, and the reports' cross-check.

- ``GET /api/v1/metering/organisations?period=`` (OWN_FIGURES): ``organisation_figures`` for the
  period with names; an operator sees every organisation and the API call totals by caller kind
  (anonymous apart), a participant's key only its own organisation.
- ``GET /api/v1/metering/crosscheck?period=&grace_minutes=`` (OPERATOR_READ): the provider's and
  the consumer's report of each transfer side by side, disagreements flagged.
"""

from __future__ import annotations

import json
from datetime import timedelta

from aiohttp import web

from mesh.http_auth import OPERATOR_READ, OWN_FIGURES, PARTICIPANT, door, principal_of
from mesh.http_input import int_param
from registry.metering.crosscheck import DEFAULT_GRACE, crosscheck
from registry.metering.figures import api_call_totals, organisation_figures
from registry.metering.usage import parse_period
from registry.store import RegistryStore

METERING_STORE = web.AppKey("metering_store", RegistryStore)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def organisations_report(store: RegistryStore, period_text: str | None,
                               only: str | None = None) -> dict:
    """What the API and the console page show: per organisation, its figures and name."""
    period = parse_period(period_text)
    figures = await organisation_figures(store.db, period)
    names = {p.id: p.name for p in await store.participants()}
    hosts = {r["tenant_id"]: r["host_id"] for r in await store.db.fetchall(
        "SELECT tenant_id, host_id FROM hosting")}
    rows = [{"id": pid, "name": names.get(pid, ""), "hosted_by": hosts.get(pid), **f}
            for pid, f in sorted(figures.items()) if only is None or pid == only]
    out: dict = {"period": period.to_json(), "organisations": rows}
    if only is None:
        out["api_calls"] = await api_call_totals(store.db, period)
    return out


@door(OWN_FIGURES)
async def organisations(request: web.Request) -> web.Response:
    caller = principal_of(request)
    only = caller.id if caller.kind == PARTICIPANT else None
    return web.json_response(await organisations_report(
        request.app[METERING_STORE], request.query.get("period"), only), dumps=_dumps)


@door(OPERATOR_READ)
async def crosscheck_view(request: web.Request) -> web.Response:
    grace = int_param(request.query, "grace_minutes",
                      default=int(DEFAULT_GRACE.total_seconds() // 60), low=0, high=60 * 24 * 31)
    period = parse_period(request.query.get("period"))
    return web.json_response(await crosscheck(request.app[METERING_STORE].db, period,
                                              grace=timedelta(minutes=grace)), dumps=_dumps)


def add_metering_routes(app: web.Application, store: RegistryStore) -> None:
    app[METERING_STORE] = store
    app.router.add_get("/api/v1/metering/organisations", organisations)
    app.router.add_get("/api/v1/metering/crosscheck", crosscheck_view)
