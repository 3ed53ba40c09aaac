"""The connector's background duties: heartbeat, certificate renewal, revocation refresh, peer
discovery and flow-ledger checkpoints. The revocation refresh also fetches the trust bundle:
the federated meshes' roots and revocation lists (connector/federation.py). Each loop logs and
retries on failure; none of them stops the node.

Ledger checkpoints (DESIGN §8, 5-2): at the end of every personal-data transfer
(``connector.ledger.checkpoint.request_checkpoint``) and every
``connector.ledger.checkpoint_interval``, when the ledger file exists, the head is signed with
the node key if entries were added since the last checkpoint, and every checkpoint the registry
does not hold yet is sent to it, oldest first. A failed step waits for the next round.
The ledger is opened for that step and closed again (a second connection beside the data
plane's; SQLite serialises the writers), so a node that never transferred personal data does not
load it. A checkpoint is marked published once the registry holds it: accepted, already held, or
recorded as a fork (``checkpoint_conflict``: kept there for audit, logged here as an error;
sending it again would change nothing). Other refusals leave it pending and are logged; the
registry being unreachable only defers the step.

Registry outages: while the registry cannot be reached the node goes on serving on its cached
revocation list until that list's next-update plus ``connector.crl.grace``; past that it refuses
peer calls (``revocation_list_stale``) and reports itself unhealthy: ``health()`` says why and
since when, ``/healthz`` answers 503 and gRPC health NOT_SERVING (``on_health``). When a
heartbeat gets through again after failures, or the cached list is past its next-update, the
revocation list is fetched at once instead of at the next refresh tick, so the node is back to
normal within one heartbeat interval plus the registry client's reconnect backoff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from connector.config import ConnectorConfig
from connector.federation import FederatedTrust
from connector.ledger.checkpoint import wait_for_request
from connector.peers import PeerDirectory
from connector.registry_client import RegistryClient
from mesh.certs import remaining_fraction
from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import AreameshError
from mesh.keystore import NodeKeyStore
from mesh.revocation import CachedRevocationList

log = logging.getLogger("areamesh.connector.maintenance")
ledger_log = logging.getLogger("areamesh.connector.ledger")

CHECKPOINTS_PER_CALL = 100   # the registry takes at most this many per SubmitLedgerCheckpoints
CONFLICT = "checkpoint_conflict"


class Maintenance:
    def __init__(self, config: ConnectorConfig, keystore: NodeKeyStore, registry: RegistryClient,
                 crl: CachedRevocationList, peers: PeerDirectory, advertise: str, *,
                 on_health: Callable[[bool], Awaitable[None]] | None = None,
                 federation: FederatedTrust | None = None) -> None:
        """``on_health(serving)`` is awaited whenever ``health()`` changes (gRPC health)."""
        self.config = config
        self.keystore = keystore
        self.registry = registry
        self.crl = crl
        self.peers = peers
        self.advertise = advertise
        self.on_health = on_health
        self.federation = federation
        self.last_heartbeat: datetime | None = None
        self.last_error: str | None = None
        self.unreachable_since: datetime | None = None  # first failed contact of the outage
        self.renewals = 0
        self.checkpoints_pending = 0
        self._crl_wakeup = asyncio.Event()
        self._serving: bool | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._heartbeat_loop(), name="heartbeat")
            tg.create_task(self._crl_loop(), name="crl-refresh")
            tg.create_task(self._ledger_loop(), name="ledger-checkpoints")
            tg.create_task(self._health_loop(), name="health")

    def health(self) -> dict[str, object]:
        """``{"status": "ok"}``, or ``{"status": "unavailable", "reason": {...}}`` naming why
        (``revocation_list_stale``), since when, and the registry's last contact and error."""
        until = self.crl.usable_until()
        if until is not None and utcnow() <= until:
            return {"status": "ok"}
        return {"status": "unavailable", "reason": {
            "code": "revocation_list_stale",
            "message": "the registry has been unreachable past the revocation list's grace; "
                       "peer calls are refused until a current list is fetched",
            "message_ja": "レジストリに猶予期間を超えて接続できないため、失効リストを更新できず、"
                          "ピアからの呼び出しを拒否しています",
            "since": iso(until) if until else None,
            "registry": self.registry.address,
            "registry_unreachable_since": iso(self.unreachable_since)
            if self.unreachable_since else None,
            "last_heartbeat": iso(self.last_heartbeat) if self.last_heartbeat else None,
            "last_error": self.last_error}}

    async def update_health(self) -> bool:
        """Recompute ``health()``; tell ``on_health`` when it changed. Returns serving."""
        serving = self.health()["status"] == "ok"
        if serving != self._serving:
            if self._serving is not None or not serving:
                (log.info if serving else log.error)(
                    "node health: %s", "SERVING" if serving else
                    f"NOT_SERVING (revocation list unusable since {self.crl.usable_until()}, "
                    f"registry {self.registry.address} unreachable since {self.unreachable_since})")
            self._serving = serving
            if self.on_health is not None:
                await self.on_health(serving)
        return serving

    def _contact(self, error: str | None, *, unreachable: bool = False) -> None:
        """Record the outcome of a heartbeat: ``error`` None when it got through, else its
        message, ``unreachable`` when the registry could not be reached at all."""
        if error is None:
            if self.unreachable_since is not None:
                log.info("registry %s reachable again (unreachable since %s)",
                         self.registry.address, iso(self.unreachable_since))
                self._crl_wakeup.set()  # whatever the numbers say: the list may be stale
            self.unreachable_since = None
            self.last_error = None
            return
        self.last_error = error
        if unreachable and self.unreachable_since is None:
            self.unreachable_since = utcnow()

    async def heartbeat_once(self) -> None:
        await self.renew_if_due()
        reply = await self.registry.heartbeat(self.advertise)
        self.last_heartbeat = utcnow()
        self._contact(None)
        if reply.revocation_list_number > self.crl.number or not self._crl_current():
            self._crl_wakeup.set()
        self.peers.update(await self.registry.list_nodes())

    def _crl_current(self) -> bool:
        return self.crl.next_update is not None and utcnow() < self.crl.next_update

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
        adopted = self.crl.update(reply.crl_der)
        if self.federation is not None:   # federated roots and lists travel with the list
            self.federation.apply(await self.registry.trust_bundle())
        await self.update_health()
        return adopted

    async def checkpoint_ledger_once(self) -> int:
        """Sign the ledger's head if it moved and send the checkpoints the registry lacks; returns
        how many were sent. Nothing to do (0) without a ledger file."""
        data_dir = self.config.data_dir
        if not (data_dir / "ledger.db").exists():
            return 0
        from connector.ledger.chain import (  # loaded only where a ledger exists
            CHECKPOINT_DEFER,
            SqliteLedger,
        )

        ledger = await SqliteLedger.open(data_dir, create=False)
        try:
            made = await ledger.checkpoint_if_changed(self.keystore)
            if made is not None:
                ledger_log.info("ledger checkpoint signed at seq %d", made.checkpoint.seq,
                                extra={"seq": made.checkpoint.seq, "head": made.checkpoint.head})
            pending = await ledger.checkpoints(unpublished=True)
            self.checkpoints_pending = len(pending)
            for start in range(0, len(pending), CHECKPOINTS_PER_CALL):
                chunk = pending[start:start + CHECKPOINTS_PER_CALL]
                reply = await self.registry.submit_ledger_checkpoints(
                    [canonical_json(s.to_json()) for s in chunk])
                refused = {r.index: r for r in reply.rejected}
                for index, signed in enumerate(chunk):
                    r = refused.get(index)
                    if r is None or r.code == CONFLICT:
                        await ledger.mark_published(signed)
                        self.checkpoints_pending -= 1
                    if r is not None:
                        (ledger_log.error if r.code == CONFLICT else ledger_log.warning)(
                            "the registry refused the ledger checkpoint at seq %d: %s",
                            signed.checkpoint.seq, r.message,
                            extra={"code": r.code, "seq": signed.checkpoint.seq})
            if made is not None:  # the checkpoint filled the residents' index: keep it compact
                await ledger.merge_index(defer=CHECKPOINT_DEFER)
            return len(pending)
        finally:
            await ledger.close()

    async def _ledger_loop(self) -> None:
        interval = self.config.ledger_checkpoint_interval.total_seconds()
        while True:
            try:
                await self.checkpoint_ledger_once()
            except AreameshError as exc:
                (ledger_log.error if exc.code == "ledger_unreadable" else ledger_log.warning)(
                    "ledger checkpoints not sent (%d pending, retried in %.0fs): %s",
                    self.checkpoints_pending, interval, exc.message, extra={"code": exc.code})
            except Exception:
                ledger_log.exception("ledger checkpoint step failed")
            await wait_for_request(interval)   # or sooner, after a personal-data transfer

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat_interval.total_seconds()
        while True:
            try:
                await self.heartbeat_once()
            except AreameshError as exc:
                self._contact(exc.message, unreachable=exc.code == "registry_unavailable")
                log.warning("heartbeat failed: %s", exc.message)
            except Exception as exc:
                self._contact(str(exc))
                log.exception("heartbeat failed")
            await asyncio.sleep(interval)

    async def _health_loop(self) -> None:
        """Health changes with the clock too (the cached list ages past its grace)."""
        period = min(self.config.heartbeat_interval, self.config.crl_refresh).total_seconds()
        while True:
            try:
                await self.update_health()
            except Exception:
                log.exception("health update failed")
            await asyncio.sleep(min(period, 5.0))

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
