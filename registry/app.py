"""Wiring of the registry process: build, start, stop. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from aiohttp import web

from mesh import egress
from mesh.config import parse_hostport
from mesh.grpc_auth import PeerAuthInterceptor
from mesh.grpc_server import MeshGrpcServer, start_server
from mesh.http import start_site
from mesh.proto.areamesh.v1 import federation_pb2_grpc, identity_pb2_grpc, registry_pb2_grpc
from mesh.tls import dynamic_server_credentials
from registry.ca.authority import CertificateAuthority
from registry.catalog.datasets import CatalogService
from registry.config import RegistryConfig
from registry.database import registry_initialised
from registry.federation.grpc_service import PUBLIC_METHODS as FEDERATION_METHODS
from registry.federation.grpc_service import SERVICE_NAME as FEDERATION_SERVICE_NAME
from registry.federation.grpc_service import FederationGrpcService
from registry.federation.link import FederationLinks
from registry.federation.search import FederatedCatalog
from registry.federation.store import FederationStore
from registry.grpc_service import ENROL_METHOD, SERVICE_NAME, RegistryDbChecker, RegistryGrpcService
from registry.http_api import build_http_app
from registry.identity.grpc_service import SERVICE_NAME as IDENTITY_SERVICE_NAME
from registry.identity.grpc_service import IdentityGrpcService
from registry.identity.service import IdentityService
from registry.store import RegistryStore, open_registry_db

log = logging.getLogger("areamesh.registry")


class RegistryApp:
    def __init__(self, config: RegistryConfig) -> None:
        self.config = config
        egress.protect_path(config.data_dir)   # never in an error a caller sees
        self.grpc: MeshGrpcServer | None = None
        self.identity: IdentityService | None = None
        self.http: web.AppRunner | None = None
        self._federation_task: asyncio.Task | None = None
        self.grpc_port = 0
        self.enrol_port = 0
        self.http_port = 0

    async def start(self) -> None:
        data_dir = self.config.data_dir
        if not registry_initialised(data_dir, self.config.database):
            raise SystemExit(f"{data_dir} is not a registry data dir; run "
                             f"'areamesh registry init --data-dir {data_dir} --name ...' first")
        self.db = await open_registry_db(data_dir, self.config.database).open()
        self.store = RegistryStore(self.db)
        mesh_id = await self.store.meta("mesh_id")
        if mesh_id is None and self.db.dialect != "sqlite":
            await self.db.close()
            raise SystemExit(f"the database {self.db.path} holds no registry; run 'areamesh "
                             f"registry init --data-dir … --name … --database …' first")
        self.ca = CertificateAuthority(data_dir / "ca", mesh_id or "default")
        self.ca.ensure_registry_certificate()
        self.federation = FederationLinks(FederationStore(self.db), self.ca)
        await self.federation.reload()
        mtls = dynamic_server_credentials(self.federation.server_config,
                                          require_client_auth=True)
        enrol_tls = dynamic_server_credentials(self.ca.registry_server_config,
                                               require_client_auth=False)
        revocation = RegistryDbChecker(self.store)
        interceptor = PeerAuthInterceptor(
            revocation, public_methods=frozenset({ENROL_METHOD}) | FEDERATION_METHODS,
            resolve=self.federation.trust.identity)
        self.catalog = CatalogService(self.db, self.store)
        await self.catalog.reindex_unclassified()
        service = RegistryGrpcService(self.config, self.store, self.ca, self.catalog,
                                      links=self.federation)
        self.identity = await IdentityService.open(data_dir / "identity", [self.ca.certificate],
                                                   database=self.config.database,
                                                   revocation=revocation)
        identity = IdentityGrpcService(self.identity, self.store)
        self.grpc = await start_server(
            [(self.config.grpc_listen, mtls), (self.config.enrol_listen, enrol_tls)], interceptor,
            [(registry_pb2_grpc.add_RegistryServiceServicer_to_server, service, SERVICE_NAME),
             (identity_pb2_grpc.add_IdentityServiceServicer_to_server, identity,
              IDENTITY_SERVICE_NAME),
             (federation_pb2_grpc.add_FederationServiceServicer_to_server,
              FederationGrpcService(self.federation.store, service), FEDERATION_SERVICE_NAME)])
        self._federation_task = asyncio.create_task(
            self.federation.run(self.config.federation_interval), name="federation")
        self.grpc_port, self.enrol_port = self.grpc.ports
        # the HTTP side (the console's join command) knows the ports as bound, not as port 0
        bound = replace(self.config, grpc_listen=_with_port(self.config.grpc_listen, self.grpc_port),
                        enrol_listen=_with_port(self.config.enrol_listen, self.enrol_port))
        self.http, self.http_port = await start_site(
            build_http_app(bound, self.store, self.ca, self.catalog,
                           FederatedCatalog(self.catalog, self.federation)),
            self.config.http_listen)
        log.info("registry of mesh %s ready (CA %s)", self.ca.mesh_id, self.ca.fingerprint,
                 extra={"grpc_port": self.grpc_port, "enrol_port": self.enrol_port,
                        "http_port": self.http_port})

    def ready_info(self) -> dict[str, object]:
        return {"grpc_port": self.grpc_port, "enrol_port": self.enrol_port,
                "http_port": self.http_port, "mesh_id": self.ca.mesh_id,
                "ca_fingerprint": self.ca.fingerprint}

    async def stop(self, grace: float = 5.0) -> None:
        log.info("stopping registry: gRPC")
        if self.grpc:
            await self.grpc.stop(grace)
        if self._federation_task:
            self._federation_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._federation_task
        log.info("stopping registry: HTTP")
        if self.http:
            await self.http.cleanup()
        log.info("stopping registry: identity database")
        if self.identity:
            await self.identity.close()
        log.info("stopping registry: database")
        await self.db.close()
        log.info("registry stopped")


def _with_port(address: str, port: int) -> str:
    host, _ = parse_hostport(address, what="address")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
