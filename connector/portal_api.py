"""The resident portal's HTTP API on the connector (5-4, 5-5, 5-6): consent and "where did my data go".

These routes are for server-to-server integration only: a municipality's own portal server
that has already authenticated the resident calls them for that resident. The shared token
(``Authorization: Bearer`` with ``DATA_DIR/portal.token``, created 0600 at first start) lets
its holder act for ANY resident, so it must never reach a browser. Residents themselves use the
connector's own resident portal at ``/portal/`` (``connector/web/portal``), signed in through
the platform's OpenID provider, where the resident id comes from their session only.

- ``GET  /api/v1/residents/{resident}/consents``: every consent, with its status now.
- ``POST /api/v1/residents/{resident}/consents``: grant; JSON ``{participant, purpose,
  dataset?, service?, component?, items?, expires?}``; 201 with the consent. A resident who is
  not in the named personal dataset is refused (404 ``unknown_resident``).
- ``POST /api/v1/residents/{resident}/consents/{id}/withdraw``: JSON ``{reason?}``.
- ``GET  /api/v1/residents/{resident}/consent-history``: the evidence, every change timestamped.
- ``GET  /api/v1/residents/{resident}/flows``: where the resident's data went (the flow ledger).
- ``GET  /api/v1/residents/{resident}/datasets``: where the resident's data is (5-4): each
  personal dataset on this connector holding their records, with how many (read from the source
  as a transfer reads it: about a second per million records).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from mesh.errors import InvalidRequest
from mesh.http_auth import RESIDENT_PORTAL, door
from mesh.http_input import field_str, field_str_list, read_json_object

if TYPE_CHECKING:
    from connector.data_plane import DataPlane

PORTAL = web.AppKey("portal", object)
GRANT_KEYS = {"participant", "purpose", "dataset", "service", "component", "items", "expires"}


class ResidentPortalApi:
    def __init__(self, data_dir: Path, data_plane: DataPlane) -> None:
        self.data_dir = data_dir
        self.data_plane = data_plane

    async def _body(self, request: web.Request) -> dict[str, Any]:
        return await read_json_object(request)

    @door(RESIDENT_PORTAL)
    async def consents(self, request: web.Request) -> web.Response:
        store, _ = await self.data_plane.personal()
        found = await store.list(resident=request.match_info["resident"])
        return web.json_response({"consents": [c.to_json() for c in found]})

    @door(RESIDENT_PORTAL)
    async def grant(self, request: web.Request) -> web.Response:
        from connector.consent.cli import _expiry, known_in

        body = await self._body(request)
        unknown = sorted(set(body) - GRANT_KEYS)
        if unknown:
            raise InvalidRequest(f"unknown fields {unknown}; use {sorted(GRANT_KEYS)}",
                                 message_ja=f"不明な項目です: {unknown}", code="invalid_consent")
        participant, purpose = (field_str(body, key, required=True, max_chars=200,
                                          code="invalid_consent")
                                for key in ("participant", "purpose"))
        dataset, service, component, expires = (
            field_str(body, key, max_chars=200, code="invalid_consent")
            for key in ("dataset", "service", "component", "expires"))
        items = field_str_list(body, "items", code="invalid_items")
        dataset = dataset or "*"
        store, _ = await self.data_plane.personal()
        consent_id = await store.grant(
            request.match_info["resident"], participant=participant, purpose=purpose,
            dataset_id=dataset, service_id=service, component_id=component,
            items=items, expires_at=_expiry(expires),
            known_subject=known_in(self.data_dir, dataset), actor="resident-portal")
        return web.json_response((await store.get(consent_id)).to_json(), status=201)

    @door(RESIDENT_PORTAL)
    async def withdraw(self, request: web.Request) -> web.Response:
        body = await read_json_object(request, optional=True)
        reason = field_str(body, "reason", max_chars=500) or ""
        store, _ = await self.data_plane.personal()
        ids = await store.withdraw(request.match_info["consent_id"], resident=request.match_info["resident"],
                                   reason=reason, actor="resident-portal")
        return web.json_response({"withdrawn": ids})

    @door(RESIDENT_PORTAL)
    async def history(self, request: web.Request) -> web.Response:
        store, _ = await self.data_plane.personal()
        events = await store.history(request.match_info["resident"])
        return web.json_response({"events": [e.to_json() for e in events]})

    @door(RESIDENT_PORTAL)
    async def flows(self, request: web.Request) -> web.Response:
        _, ledger = await self.data_plane.personal()
        found = await ledger.flows_for(request.match_info["resident"])
        return web.json_response({"resident": request.match_info["resident"],
                                  "flows": [f.to_json() for f in found]})

    @door(RESIDENT_PORTAL)
    async def datasets(self, request: web.Request) -> web.Response:
        resident = request.match_info["resident"]
        return web.json_response({"resident": resident,
                                  "datasets": await datasets_holding(self.data_dir, resident)})

    def add_routes(self, app: web.Application) -> None:
        base = "/api/v1/residents/{resident}"
        app.router.add_get(f"{base}/consents", self.consents)
        app.router.add_post(f"{base}/consents", self.grant)
        app.router.add_post(f"{base}/consents/{{consent_id}}/withdraw", self.withdraw)
        app.router.add_get(f"{base}/consent-history", self.history)
        app.router.add_get(f"{base}/flows", self.flows)
        app.router.add_get(f"{base}/datasets", self.datasets)


async def datasets_holding(data_dir: Path, resident: str) -> list[dict[str, Any]]:
    """Each personal dataset on this connector holding records about ``resident``, with how
    many (the JSON API and the resident portal's 「わたしのデータ」 both ask this)."""
    from connector.consent.cli import SUBJECT_FIELD, subject_sources
    from connector.datasets.sources import open_dataset_source

    held = []
    for store, doc in subject_sources(data_dir, "*"):
        source = open_dataset_source(store, doc)
        try:
            count = await _records_of(source, doc[SUBJECT_FIELD], resident)
        finally:
            await source.close()
        if count:
            held.append({"dataset": doc["id"], "publisher": doc.get("publisher"),
                         "title": doc.get("title", {}), "classification": doc.get("classification"),
                         "management": doc.get("management", "external"), "records": count,
                         "fields": [f.get("name") for f in doc.get("schema", {}).get("fields", [])
                                    if isinstance(f, dict) and f.get("name") != doc[SUBJECT_FIELD]]})
    return held


async def _records_of(source: Any, column: str, resident: str) -> int:
    """How many of ``source``'s records have ``resident`` in ``column``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    count = 0
    async for batch in source.read():
        index = batch.schema.get_field_index(column)
        if index < 0:
            return 0
        values = batch.column(index)
        if values.type != pa.string():
            values = pc.cast(values, pa.string())
        count += pc.sum(pc.equal(values, resident)).as_py() or 0
    return count
