"""The registry's HTTP side: health, trust bundle, revocation list, participants, metrics."""

from __future__ import annotations

import json

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mesh.errors import InvalidRequest
from mesh.http import error_middleware, metrics
from registry.ca.authority import CertificateAuthority
from registry.catalog.ckan_api import add_ckan_routes
from registry.catalog.datasets import CatalogService
from registry.catalog.dcat import dcat_catalog
from registry.catalog.query import search_query
from registry.config import RegistryConfig
from registry.metering.usage import UsageLedger, parse_period
from registry.openapi import OPENAPI
from registry.store import RegistryStore

STORE = web.AppKey("store", RegistryStore)
CA = web.AppKey("ca", CertificateAuthority)
CONFIG = web.AppKey("config", RegistryConfig)
CATALOG = web.AppKey("catalog", CatalogService)


async def healthz(request: web.Request) -> web.Response:
    await request.app[STORE].db.fetchone("SELECT 1")
    return web.json_response({"status": "ok", "mesh_id": request.app[CA].mesh_id})


async def trust_bundle(request: web.Request) -> web.Response:
    """The mesh roots as PEM. Anyone may fetch it; a node checks it against its pinned hash."""
    ca = request.app[CA]
    return web.Response(body=ca.ca_pem(), content_type="application/x-pem-file",
                        headers={"X-Areamesh-Mesh-Id": ca.mesh_id,
                                 "X-Areamesh-CA-Fingerprint": ca.fingerprint})


async def revocation_list(request: web.Request) -> web.Response:
    """The signed CRL: DER by default, PEM with ``?format=pem``."""
    fmt = request.query.get("format", "der")
    if fmt not in ("der", "pem"):
        raise InvalidRequest("format must be der or pem", message_ja="format は der か pem です")
    crl = await request.app[STORE].current_crl(request.app[CA], request.app[CONFIG].crl_validity)
    headers = {"X-Areamesh-CRL-Number": str(crl.number),
               "X-Areamesh-Next-Update": crl.next_update.isoformat()}
    if fmt == "pem":
        pem = x509.load_der_x509_crl(crl.crl_der).public_bytes(serialization.Encoding.PEM)
        return web.Response(body=pem, content_type="application/x-pem-file", headers=headers)
    return web.Response(body=crl.crl_der, content_type="application/pkix-crl", headers=headers)


async def participants(request: web.Request) -> web.Response:
    """The public register: certified participants and the certification criteria (5-1)."""
    store = request.app[STORE]
    rows = [p for p in await store.participants() if p.status == "certified"]
    hosting = {p.id: await store.host_of(p.id) for p in rows}
    return web.json_response({
        "criteria": await store.meta("certification_criteria") or "",
        "participants": [{"id": p.id, "name": p.name, "type": p.type, "status": p.status,
                          "hosted_by": hosting[p.id]} for p in rows]})


async def usage(request: web.Request) -> web.Response:
    """Metering per participant for a billing period (JST): provided and consumed transfers,
    records and bytes, from the providers' reports (DESIGN §9)."""
    store = request.app[STORE]
    period = parse_period(request.query.get("period"))
    names = {p.id: p.name for p in await store.participants()}
    return web.json_response(await UsageLedger(store.db).summary(period, names), dumps=_dumps)


def search_json(result, records) -> dict:
    return {"total": result.total, "results": [r.to_json() for r in records],
            "facets": {name: [{"value": str(v), "count": n} for v, n in counts.items()]
                       for name, counts in result.facets.items()}}


async def datasets(request: web.Request) -> web.Response:
    """GET /api/v1/datasets?q=&theme=&publisher=&prefecture=&standard_type=&personal=&page=&per_page="""
    query = search_query(request.query)
    result, records = await request.app[CATALOG].search(query)
    body = search_json(result, records)
    body.update(page=query.page, per_page=query.per_page)
    return web.json_response(body, dumps=_dumps)


async def dataset(request: web.Request) -> web.Response:
    record = await request.app[CATALOG].get(request.match_info["id"])
    return web.json_response(record.to_json(), dumps=_dumps)


async def catalog_jsonld(request: web.Request) -> web.Response:
    base = f"{request.scheme}://{request.host}"
    doc = await dcat_catalog(request.app[CATALOG], request.app[STORE], base)
    return web.Response(text=_dumps(doc), content_type="application/ld+json")


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI, dumps=_dumps)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def build_http_app(config: RegistryConfig, store: RegistryStore, ca: CertificateAuthority,
                   catalog: CatalogService) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    app[STORE] = store
    app[CA] = ca
    app[CONFIG] = config
    app[CATALOG] = catalog
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/trust-bundle", trust_bundle)
    app.router.add_get("/api/v1/crl", revocation_list)
    app.router.add_get("/api/v1/participants", participants)
    app.router.add_get("/api/v1/usage", usage)
    app.router.add_get("/api/v1/datasets", datasets)
    app.router.add_get("/api/v1/datasets/{id}", dataset)
    app.router.add_get("/catalog.jsonld", catalog_jsonld)
    app.router.add_get("/openapi.json", openapi)
    add_ckan_routes(app, catalog, store)
    return app
