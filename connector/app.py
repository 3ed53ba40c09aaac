"""Wiring of the connector process: build, start, stop. Nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging

from aiohttp import web

from connector.config import ConnectorConfig
from connector.consent.counts import consent_counts, personal_dataset_ids
from connector.consent_grpc import SERVICE_NAME as CONSENT_SERVICE_NAME
from connector.consent_grpc import ConsentGrpcService
from connector.contracts.duties import DutyBook, DutyReporter
from connector.contracts.negotiation import ProviderNegotiator
from connector.contracts.participants import ParticipantTypes
from connector.contracts.store import AgreementStore, open_contracts_db
from connector.data_plane import DataPlane
from connector.federation import FederatedTrust
from connector.grpc_service import SERVICE_NAME, PeerGrpcService, add_peer_service
from connector.http_api import build_http_app
from connector.maintenance import Maintenance
from connector.metering.reporter import UsageReporter
from connector.metering.store import UsageStore, open_metering_db
from connector.node_state import NodeState
from connector.operators.accounts import open_console_db
from connector.peers import PeerDirectory
from connector.registry_client import RegistryClient
from connector.subscriptions.watcher import DatasetWatcher
from connector.transfer.fetch_lock import recover_consumer_orphans, remove_free_locks
from connector.transfer.guard import AgreementGuard
from mesh import egress
from mesh.certs import load_pem_bundle
from mesh.config import parse_hostport
from mesh.errors import AreameshError
from mesh.grpc_auth import PeerAuthInterceptor
from mesh.grpc_server import MeshGrpcServer, start_server
from mesh.http import start_site
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import consent_pb2_grpc
from mesh.revocation import CachedRevocationList
from mesh.tls import dynamic_server_credentials

log = logging.getLogger("areamesh.connector")


class ConnectorApp:
    def __init__(self, config: ConnectorConfig) -> None:
        self.config = config
        egress.protect_path(config.data_dir)   # never in an error a peer sees
        self.state = NodeState.load(config.data_dir)
        self.keystore = NodeKeyStore(config.data_dir / "tls")
        if not self.keystore.exists():
            raise SystemExit(f"{config.data_dir / 'tls'} lacks node.key/node.crt/ca.crt; join "
                             "the mesh first")
        self.crl = CachedRevocationList(load_pem_bundle(self.keystore.trust_bundle_pem()),
                                        config.data_dir / "tls" / "crl.der",
                                        grace=config.crl_grace)
        self.federation = FederatedTrust(config.data_dir / "tls", self.state.mesh_id,
                                         load_pem_bundle(self.keystore.trust_bundle_pem()),
                                         self.crl, grace=config.crl_grace)
        self.registry = RegistryClient(self.state, self.keystore,
                                       config.registry or self.state.registry)
        self.peers = PeerDirectory(self.keystore, self.state.identity_uri)
        self.grpc: MeshGrpcServer | None = None
        self.http: web.AppRunner | None = None
        self._maintenance_task: asyncio.Task | None = None
        self._watch_task: asyncio.Task | None = None
        self._report_task: asyncio.Task | None = None
        self._duty_task: asyncio.Task | None = None
        self.grpc_port = 0
        self.http_port = 0
        self.advertise = ""

    async def start(self) -> None:
        self.contracts_db = await open_contracts_db(self.config.data_dir).open()
        self.metering_db = await open_metering_db(self.config.data_dir).open()
        self.console_db = await open_console_db(self.config.data_dir).open()
        agreements = AgreementStore(self.contracts_db)
        usage = UsageStore(self.metering_db)
        if orphans := await usage.recover_orphans():  # transfers a previous process was sending
            log.warning("%d transfers were cut off when this connector last stopped", orphans)
        if orphans := await recover_consumer_orphans(usage, self.config.data_dir):
            log.warning("%d fetches were cut off (their process ended while fetching)", orphans)
        remove_free_locks(self.config.data_dir)   # left by fetches killed before their first batch
        negotiator = ProviderNegotiator(self.config.data_dir, self.keystore, self.registry, agreements)
        guard = AgreementGuard(self.config.data_dir, self.keystore, agreements,
                               ParticipantTypes(self.registry, ttl=30))
        self.watcher = DatasetWatcher(self.config.data_dir, self.config.watch_interval.total_seconds())
        self.usage_reporter = UsageReporter(usage, self.registry, self.keystore,
                                            self._consent_counts)
        duties = DutyBook(self.contracts_db, agreements, usage)
        self.duty_reporter = DutyReporter(duties, self.registry)
        self.data_plane = DataPlane(self.config.data_dir, guard, usage, self.state.identity_uri,
                                    self._transfer_ended, levels=self.registry.transfer_levels)
        creds = dynamic_server_credentials(self.keystore.server_credentials_config,
                                           require_client_auth=True)
        self.grpc = await start_server(
            [(self.config.grpc_listen, creds)],
            PeerAuthInterceptor(self.federation, resolve=self.federation.trust.identity),
            [(add_peer_service,
              PeerGrpcService(self.state.identity_uri, negotiator, self.data_plane, agreements,
                              guard, self.watcher, duties, self.duty_reporter.poke), SERVICE_NAME),
             (consent_pb2_grpc.add_ConsentServiceServicer_to_server,
              ConsentGrpcService(self.config.data_dir, self.data_plane, self.state.identity_uri,
                                 lambda: load_pem_bundle(self.keystore.trust_bundle_pem()),
                                 self.crl), CONSENT_SERVICE_NAME)])
        self.grpc_port = self.grpc.port
        host, _ = parse_hostport(self.config.grpc_listen, what="--grpc")
        self.advertise = self.config.advertise or f"{host}:{self.grpc_port}"
        self.maintenance = Maintenance(self.config, self.keystore, self.registry, self.crl,
                                       self.peers, self.advertise, on_health=self.grpc.set_serving,
                                       federation=self.federation)
        try:  # first contact before serving HTTP, so /healthz means "enrolled and reporting"
            await self.maintenance.refresh_crl_once()
            await self.maintenance.heartbeat_once()
        except AreameshError as exc:
            log.warning("registry not reachable at start-up (working on cached state): %s",
                        exc.message)
        self._maintenance_task = asyncio.create_task(self.maintenance.run(), name="maintenance")
        self._watch_task = asyncio.create_task(self.watcher.run(), name="dataset-watcher")
        self._report_task = asyncio.create_task(
            self.usage_reporter.run(self.config.heartbeat_interval.total_seconds()), name="usage-report")
        self._duty_task = asyncio.create_task(
            self.duty_reporter.run(self.config.heartbeat_interval.total_seconds()), name="duty-report")
        self.http, self.http_port = await start_site(build_http_app(self), self.config.http_listen)
        log.info("connector %s ready", self.state.identity_uri,
                 extra={"grpc_port": self.grpc_port, "http_port": self.http_port,
                        "advertise": self.advertise})
        # what start-up built (modules, the apps, ~90k objects) lives as long as the process:
        # the collector no longer walks it at every full collection, which took 0.3–0.5 s each
        # every few thousand small transfers, 0.2 ms a transfer (issue 18)
        gc.collect()
        gc.freeze()

    async def _consent_counts(self) -> list[dict]:
        """Consented residents per personal dataset served here (counts only), for metering."""
        datasets = await asyncio.to_thread(personal_dataset_ids, self.config.data_dir)
        if not datasets:
            return []
        consents, _ledger = await self.data_plane.personal()
        return await consent_counts(consents.db, datasets)

    def _transfer_ended(self) -> None:
        """A transfer ended: its usage goes to the registry, and so do the duties it started."""
        self.usage_reporter.poke()
        self.duty_reporter.poke()

    def ready_info(self) -> dict[str, object]:
        return {"grpc_port": self.grpc_port, "http_port": self.http_port,
                "identity": self.state.identity_uri, "advertise": self.advertise}

    async def stop(self, grace: float = 5.0) -> None:
        log.info("stopping connector: gRPC (grace %.1fs)", grace)
        if self.grpc:
            await self.grpc.stop(grace)
        log.info("stopping connector: HTTP")
        if self.http:
            await self.http.cleanup()
        log.info("stopping connector: background loops")
        for task in (self._maintenance_task, self._watch_task, self._report_task, self._duty_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.peers.reset()
        await self.registry.close()
        log.info("stopping connector: databases")
        await self.contracts_db.close()
        await self.metering_db.close()
        await self.console_db.close()
        await self.data_plane.close()
        log.info("connector stopped")
