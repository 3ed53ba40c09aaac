"""The registry's HTTP side: health, trust bundle, revocation list, participants, metrics."""

from __future__ import annotations

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mesh.http import error_middleware, metrics
from registry.ca.authority import CertificateAuthority
from registry.config import RegistryConfig
from registry.store import RegistryStore

STORE = web.AppKey("store", RegistryStore)
CA = web.AppKey("ca", CertificateAuthority)
CONFIG = web.AppKey("config", RegistryConfig)


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
    crl = await request.app[STORE].current_crl(request.app[CA], request.app[CONFIG].crl_validity)
    headers = {"X-Areamesh-CRL-Number": str(crl.number),
               "X-Areamesh-Next-Update": crl.next_update.isoformat()}
    if request.query.get("format") == "pem":
        pem = x509.load_der_x509_crl(crl.crl_der).public_bytes(serialization.Encoding.PEM)
        return web.Response(body=pem, content_type="application/x-pem-file", headers=headers)
    return web.Response(body=crl.crl_der, content_type="application/pkix-crl", headers=headers)


async def participants(request: web.Request) -> web.Response:
    rows = await request.app[STORE].participants()
    return web.json_response({"participants": [
        {"id": p.id, "name": p.name, "type": p.type, "status": p.status} for p in rows]})


def build_http_app(config: RegistryConfig, store: RegistryStore,
                   ca: CertificateAuthority) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    app[STORE] = store
    app[CA] = ca
    app[CONFIG] = config
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/trust-bundle", trust_bundle)
    app.router.add_get("/api/v1/crl", revocation_list)
    app.router.add_get("/api/v1/participants", participants)
    return app
