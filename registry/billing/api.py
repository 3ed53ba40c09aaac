"""The billing API: stored runs of the cost allocation (費用按分).

- ``GET /api/v1/billing``: the runs, newest period first (operators).
- ``GET /api/v1/billing/{period}``: one run: items, every participant's statement, totals
  (operators: other organisations' figures are operator-only).
- ``GET /api/v1/billing/{period}/statement``: a participant's own statement (its API key; a
  ``?participant=`` naming another is refused with 403); an operator names the participant
  with ``?participant=`` or gets every statement. 404 when the period was never run or the
  participant has no statement in it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mesh.errors import NotFound, PermissionDenied
from mesh.http_auth import OPERATOR_READ, OWN_FIGURES, PARTICIPANT, door, principal_of
from registry.billing.runs import BillingRuns
from registry.store import RegistryStore

RUNS = web.AppKey("billing_runs", BillingRuns)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if k != "statements"}


@door(OPERATOR_READ)
async def list_runs(request: web.Request) -> web.Response:
    runs = await request.app[RUNS].list()
    return web.json_response({"runs": [r.to_json() for r in runs]}, dumps=_dumps)


@door(OPERATOR_READ)
async def get_run(request: web.Request) -> web.Response:
    return web.json_response(await request.app[RUNS].get(request.match_info["period"]),
                             dumps=_dumps)


@door(OWN_FIGURES)
async def get_statement(request: web.Request) -> web.Response:
    caller = principal_of(request)
    wanted = request.query.get("participant")
    if caller.kind == PARTICIPANT:
        if wanted not in (None, caller.id):
            raise PermissionDenied(f"participant {caller.id} may read only its own statement",
                                   code="not_own_statement",
                                   message_ja="自組織の明細のみ参照できます")
        wanted = caller.id
    run = await request.app[RUNS].get(request.match_info["period"])
    head = {k: v for k, v in _public(run).items() if k != "rules_text"}
    if wanted is None:
        return web.json_response({**head, "statements": run["statements"]}, dumps=_dumps)
    own = [s for s in run["statements"] if s["participant"] == wanted]
    if not own:
        raise NotFound(f"participant {wanted} has no statement for {run['period']}",
                       code="statement_not_found",
                       message_ja=f"{run['period']} に {wanted} の明細はありません")
    return web.json_response({**head, "statement": own[0]}, dumps=_dumps)


def add_billing_routes(app: web.Application, store: RegistryStore) -> None:
    app[RUNS] = BillingRuns(store.db)
    app.router.add_get("/api/v1/billing", list_runs)
    app.router.add_get("/api/v1/billing/{period}", get_run)
    app.router.add_get("/api/v1/billing/{period}/statement", get_statement)
