"""The connector's background duties: heartbeat, certificate renewal, revocation refresh and
peer discovery. Each loop logs and retries on failure; none of them stops the node."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from connector.config import ConnectorConfig
from connector.peers import PeerDirectory
from connector.registry_client import RegistryClient
from mesh.certs import remaining_fraction
from mesh.clock import utcnow
from mesh.errors import AreameshError
from mesh.keystore import NodeKeyStore
from mesh.revocation import CachedRevocationList

log = logging.getLogger("areamesh.connector.maintenance")


class Maintenance:
    def __init__(self, config: ConnectorConfig, keystore: NodeKeyStore, registry: RegistryClient,
                 crl: CachedRevocationList, peers: PeerDirectory, advertise: str) -> None:
        self.config = config
        self.keystore = keystore
        self.registry = registry
        self.crl = crl
        self.peers = peers
        self.advertise = advertise
        self.last_heartbeat: datetime | None = None
        self.last_error: str | None = None
        self.renewals = 0
        self._crl_wakeup = asyncio.Event()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._heartbeat_loop(), name="heartbeat")
            tg.create_task(self._crl_loop(), name="crl-refresh")

    async def heartbeat_once(self) -> None:
        await self.renew_if_due()
        reply = await self.registry.heartbeat(self.advertise)
        self.last_heartbeat = utcnow()
        self.last_error = None
        if reply.revocation_list_number > self.crl.number:
            self._crl_wakeup.set()
        self.peers.update(await self.registry.list_nodes())

    async def renew_if_due(self) -> bool:
        cert = self.keystore.certificate()
        if remaining_fraction(cert) >= self.config.renew_at:
            return False
        ident = self.registry.state
        csr = self.keystore.new_csr(node_name=ident.node_name,
                                    participant_id=ident.participant_id, uri=ident.identity_uri)
        reply = await self.registry.renew(csr)
        self.keystore.install(reply.certificate_pem,
                              b"".join(reply.trust_bundle.ca_certificates_pem)
                              or self.keystore.trust_bundle_pem())
        await self.registry.reconnect()
        await self.peers.reset()
        self.renewals += 1
        log.info("certificate renewed; new one valid until %s",
                 self.keystore.certificate().not_valid_after_utc.isoformat())
        return True

    async def refresh_crl_once(self) -> bool:
        reply = await self.registry.revocation_list()
        return self.crl.update(reply.crl_der)

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval.total_seconds()
        while True:
            try:
                await self.heartbeat_once()
            except AreameshError as exc:
                self.last_error = exc.message
                log.warning("heartbeat failed: %s", exc.message)
            except Exception as exc:
                self.last_error = str(exc)
                log.exception("heartbeat failed")
            await asyncio.sleep(interval)

    async def _crl_loop(self) -> None:
        interval = self.config.crl_refresh.total_seconds()
        while True:
            try:
                await self.refresh_crl_once()
            except AreameshError as exc:
                log.warning("revocation list refresh failed (cached list stays in force until "
                            "%s): %s", self.crl.usable_until(), exc.message)
            except Exception:
                log.exception("revocation list refresh failed")
            self._crl_wakeup.clear()
            try:
                await asyncio.wait_for(self._crl_wakeup.wait(), interval)
            except TimeoutError:
                pass
