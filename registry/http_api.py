"""The registry's HTTP side: health, trust bundle, revocation list, participants, metrics,
catalog, usage, and the operator's audit of flow ledgers (checkpoints held, export check).
Each handler declares its door (``mesh.http_auth``); docs/security.md has the table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mesh.errors import InvalidRequest, PermissionDenied, Unavailable
from mesh.http import error_middleware, metrics
from mesh.http_auth import (
    OPERATOR_READ,
    OWN_FIGURES,
    PARTICIPANT,
    PUBLIC,
    check_doors,
    door,
    door_middleware,
    principal_of,
)
from mesh.http_input import PayloadTooLarge, body_chunks, choice_param, int_param
from mesh.ids import parse_node_identity_uri
from mesh.web.render import page_errors
from mesh.web.sessions import SessionStore
from registry.admin_api import add_admin_routes
from registry.audit.checkpoints import LedgerCheckpointStore, require_node_uri
from registry.billing.api import add_billing_routes
from registry.ca.authority import CertificateAuthority
from registry.catalog.ckan_api import add_ckan_routes
from registry.catalog.datasets import CatalogService
from registry.catalog.dcat import dcat_catalog
from registry.catalog.query import search_body, search_query
from registry.config import RegistryConfig
from registry.datamap.api import add_datamap_routes
from registry.duties_api import add_duties_routes
from registry.federation.search import FEDERATED_CATALOG, FederatedCatalog, wants_federated
from registry.kpi.http_api import add_kpi_routes
from registry.metering.api_calls import ApiCallCounter
from registry.metering.http import add_metering_routes
from registry.metering.usage import UsageLedger, parse_period
from registry.openapi import OPENAPI
from registry.operators.admin import AdminService
from registry.operators.credentials import RegistryAuthenticator
from registry.store import RegistryStore
from registry.web.pages import add_registry_pages
from registry.web.site import setup_registry_web

STORE = web.AppKey("store", RegistryStore)
CA = web.AppKey("ca", CertificateAuthority)
CONFIG = web.AppKey("config", RegistryConfig)
CATALOG = web.AppKey("catalog", CatalogService)
CHECKPOINTS = web.AppKey("ledger_checkpoints", LedgerCheckpointStore)
AUDITS = web.AppKey("ledger_audits", asyncio.Semaphore)

# An export line is one batch entry with its (subject, records) list: about 20 bytes a resident,
# at most 10,000 residents or 512 KB of ids a line (the connector splits bigger batches), so
# 1 GiB holds some 50 million residents' flows. Larger ledgers are audited offline: ``areamesh
# connector ledger verify-export`` with the checkpoint from GET /api/v1/ledger/checkpoints.
MAX_EXPORT_BYTES = 1 << 30
MAX_EXPORT_LINE = 1 << 20
CONCURRENT_AUDITS = 2
AUDIT_QUEUE_SECONDS = 30


@door(PUBLIC)
async def healthz(request: web.Request) -> web.Response:
    await request.app[STORE].db.fetchone("SELECT 1")
    return web.json_response({"status": "ok", "mesh_id": request.app[CA].mesh_id})


@door(PUBLIC)
async def trust_bundle(request: web.Request) -> web.Response:
    """The mesh roots as PEM. Anyone may fetch it; a node checks it against its pinned hash."""
    ca = request.app[CA]
    return web.Response(body=ca.ca_pem(), content_type="application/x-pem-file",
                        headers={"X-Areamesh-Mesh-Id": ca.mesh_id,
                                 "X-Areamesh-CA-Fingerprint": ca.fingerprint})


@door(PUBLIC)
async def revocation_list(request: web.Request) -> web.Response:
    """The signed CRL: DER by default, PEM with ``?format=pem``."""
    fmt = choice_param(request.query, "format", ("der", "pem"), default="der")
    crl = await request.app[STORE].current_crl(request.app[CA], request.app[CONFIG].crl_validity)
    headers = {"X-Areamesh-CRL-Number": str(crl.number),
               "X-Areamesh-Next-Update": crl.next_update.isoformat()}
    if fmt == "pem":
        pem = x509.load_der_x509_crl(crl.crl_der).public_bytes(serialization.Encoding.PEM)
        return web.Response(body=pem, content_type="application/x-pem-file", headers=headers)
    return web.Response(body=crl.crl_der, content_type="application/pkix-crl", headers=headers)


@door(PUBLIC)
async def participants(request: web.Request) -> web.Response:
    """The public register: certified participants and the certification criteria (5-1)."""
    store = request.app[STORE]
    rows = [p for p in await store.participants() if p.status == "certified"]
    hosting = {p.id: await store.host_of(p.id) for p in rows}
    return web.json_response({
        "criteria": await store.meta("certification_criteria") or "",
        "participants": [{"id": p.id, "name": p.name, "type": p.type, "status": p.status,
                          "hosted_by": hosting[p.id]} for p in rows]})


@door(OWN_FIGURES)
async def usage(request: web.Request) -> web.Response:
    """Metering per participant for a billing period (JST): provided and consumed transfers,
    records and bytes, from the providers' reports (DESIGN §9). A participant's key sees only
    its own figures; an operator sees everyone's."""
    store = request.app[STORE]
    period = parse_period(request.query.get("period"))
    names = {p.id: p.name for p in await store.participants()}
    caller = principal_of(request)
    only = caller.id if caller.kind == PARTICIPANT else None
    return web.json_response(await UsageLedger(store.db).summary(period, names, only=only),
                             dumps=_dumps)


@door(PUBLIC)
async def datasets(request: web.Request) -> web.Response:
    """GET /api/v1/datasets?q=&theme=&publisher=&prefecture=&standard_type=&personal=&page=&per_page=
    &federated=true (also the federated meshes' catalogs; each result carries its mesh_id)"""
    query = search_query(request.query)
    if wants_federated(request.query) and FEDERATED_CATALOG in request.app:
        answer = await request.app[FEDERATED_CATALOG].search(query)
        return web.json_response({**search_body(query, answer.result, answer.records),
                                  "meshes": answer.meshes, "unreachable": answer.unreachable},
                                 dumps=_dumps)
    result, records = await request.app[CATALOG].search(query)
    return web.json_response(search_body(query, result, records), dumps=_dumps)


@door(PUBLIC)
async def dataset(request: web.Request) -> web.Response:
    record = await request.app[CATALOG].get(request.match_info["id"])
    return web.json_response(record.to_json(), dumps=_dumps)


@door(PUBLIC)
async def catalog_jsonld(request: web.Request) -> web.Response:
    base = f"{request.scheme}://{request.host}"
    doc = await dcat_catalog(request.app[CATALOG], request.app[STORE], base)
    return web.Response(text=_dumps(doc), content_type="application/ld+json")


@door(OWN_FIGURES)
async def ledger_checkpoints(request: web.Request) -> web.Response:
    """GET /api/v1/ledger/checkpoints?node=URI&limit=: the checkpoints held for a node, forks
    included, most recently received first (an unknown node has none)."""
    node = require_node_uri(request.query.get("node"))
    _own_node(request, node)
    limit = int_param(request.query, "limit", default=100, low=1, high=1000)
    held = await request.app[CHECKPOINTS].held(node, limit=limit)
    return web.json_response({"node": node, "checkpoints": [h.to_json() for h in held]},
                             dumps=_dumps)


@door(OPERATOR_READ)
async def ledger_audit(request: web.Request) -> web.Response:
    """POST /api/v1/ledger/audit?node=URI with the NDJSON file ``areamesh connector ledger
    export`` wrote as the body: is it an intact chain matching the checkpoints held?

    The whole body is received (spooled, with mesh/http_input.py's deadlines) before an audit
    slot is taken: a client that stalls mid-upload is timed out and never holds a slot."""
    node = require_node_uri(request.query.get("node"))
    store = request.app[CHECKPOINTS]
    await store.reference(node)            # 404 before reading a large body for nothing
    async with _spooled(request, request.app[CONFIG].data_dir) as path:
        slots = request.app[AUDITS]
        try:
            await asyncio.wait_for(slots.acquire(), AUDIT_QUEUE_SECONDS)
        except TimeoutError:
            raise Unavailable(f"{CONCURRENT_AUDITS} audits are running; try again in a minute",
                              message_ja="他の監査を実行中です。しばらくしてから再度お試しください",
                              code="audit_busy") from None
        try:
            body = await store.audit(node, path)
        finally:
            slots.release()
    return web.json_response(body, dumps=_dumps)


def _own_node(request: web.Request, node: str) -> None:
    """A participant may read only its own nodes' figures."""
    caller = principal_of(request)
    parsed = parse_node_identity_uri(node)
    if caller.kind == PARTICIPANT and (parsed is None or parsed[0] != caller.id):
        raise PermissionDenied(f"participant {caller.id} may read only its own nodes' "
                               "checkpoints", code="not_own_node",
                               message_ja="自組織のノードの情報のみ参照できます")


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the export is larger than {MAX_EXPORT_BYTES} bytes; audit it offline "
                           "with 'areamesh connector ledger verify-export' and the checkpoint "
                           "from GET /api/v1/ledger/checkpoints",
                           message_ja="台帳の写しが大きすぎます（上限 1 GiB）。"
                                      "verify-export コマンドで照合してください",
                           details={"limit": MAX_EXPORT_BYTES})


@contextlib.asynccontextmanager
async def _spooled(request: web.Request, data_dir: Path) -> AsyncIterator[Path]:
    """The request body in a temporary file under the registry's data directory (an export
    names residents: it stays with the registry's other files), removed afterwards."""
    fd, name = await asyncio.to_thread(tempfile.mkstemp, prefix="ledger-audit-", suffix=".ndjson",
                                       dir=data_dir)
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            line, number = 0, 1
            async for chunk in body_chunks(request, limit=MAX_EXPORT_BYTES,
                                           too_big=_too_large()):
                line, number = _check_lines(chunk, line, number)
                await asyncio.to_thread(f.write, chunk)
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _check_lines(chunk: bytes, line: int, number: int) -> tuple[int, int]:
    """Refuse a line longer than MAX_EXPORT_LINE while the body streams in (checking reads a
    line at a time). ``line``: bytes of the current line so far; ``number``: its number."""
    pos = 0
    while (nl := chunk.find(b"\n", pos)) >= 0:
        if line + nl - pos > MAX_EXPORT_LINE:
            break
        line, pos, number = 0, nl + 1, number + 1
    else:
        line += len(chunk) - pos
        if line <= MAX_EXPORT_LINE:
            return line, number
    raise InvalidRequest(f"the uploaded export line {number}: longer than {MAX_EXPORT_LINE} "
                         "bytes, not a ledger entry", code="ledger_export_malformed",
                         message_ja=f"アップロードされた台帳の {number} 行目が長すぎます"
                                    "（台帳の記録ではありません）", details={"line": number})


@door(PUBLIC)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(OPENAPI, dumps=_dumps)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def build_http_app(config: RegistryConfig, store: RegistryStore, ca: CertificateAuthority,
                   catalog: CatalogService, federated: FederatedCatalog | None = None
                   ) -> web.Application:
    admin = AdminService(store, ca)
    sessions = SessionStore(store.db)
    doors = door_middleware(RegistryAuthenticator(store, admin.accounts, admin.keys, sessions))
    calls = ApiCallCounter(store.db, admin.keys)
    app = web.Application(middlewares=[calls.middleware, error_middleware, page_errors, doors],
                          client_max_size=1024 * 1024)
    app.cleanup_ctx.append(calls.cleanup_context)
    app[STORE] = store
    app[CA] = ca
    app[CONFIG] = config
    app[CATALOG] = catalog
    if federated is not None:
        app[FEDERATED_CATALOG] = federated
    app[CHECKPOINTS] = LedgerCheckpointStore(store.db, [ca.certificate])
    app[AUDITS] = asyncio.Semaphore(CONCURRENT_AUDITS)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/trust-bundle", trust_bundle)
    app.router.add_get("/api/v1/crl", revocation_list)
    app.router.add_get("/api/v1/participants", participants)
    app.router.add_get("/api/v1/usage", usage)
    app.router.add_get("/api/v1/datasets", datasets)
    app.router.add_get("/api/v1/datasets/{id}", dataset)
    app.router.add_get("/api/v1/ledger/checkpoints", ledger_checkpoints)
    app.router.add_post("/api/v1/ledger/audit", ledger_audit)
    app.router.add_get("/catalog.jsonld", catalog_jsonld)
    app.router.add_get("/openapi.json", openapi)
    add_ckan_routes(app, catalog, store, federated)
    add_admin_routes(app, admin)
    add_duties_routes(app, store)
    add_metering_routes(app, store)
    add_billing_routes(app, store)
    add_datamap_routes(app, store)
    add_kpi_routes(app, store.db, config.data_dir / "identity")
    setup_registry_web(app, sessions, admin.accounts)
    add_registry_pages(app, admin, catalog, store, config)
    check_doors(app)
    return app
