"""UsageReporter: sends ended transfers, both sides, and consent counts to the registry's metering.

Runs every heartbeat interval and right after a transfer completes (``poke``). Each send is a
usage report signed with the node key (mesh/usage_reports.py), numbered by ``UsageStore``:

- provider: complete and interrupted transfers this node served (what left is metered even if
  the consumer never resumes); a transfer is sent again when a resume has grown its counts;
- consumer: the transfers this node received, for the registry to cross-check against the
  provider's figures;
- consent counts: the residents with a valid consent per personal dataset (counts only), with
  the first report after start, whenever they change, and at least every ``CONSENT_EVERY``.

Rows are marked reported only once the registry has answered, and only if their counts are
still those sent; the registry keeps one row per transfer id and side and only ever raises its
counts, so a crash or an unreachable registry delays reports but never loses or doubles them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from connector.metering.store import TransferRow, UsageStore
from connector.registry_client import RegistryClient
from mesh.errors import AreameshError
from mesh.keystore import NodeKeyStore
from mesh.usage_reports import MAX_RECORDS, SignedUsageReport

log = logging.getLogger("areamesh.connector.metering")
CONSENT_EVERY = 3600.0  # seconds
POKE_GAP = 0.5          # seconds: reports asked for by ending transfers, at most this often
ConsentCounts = Callable[[], Awaitable[list[dict[str, Any]]]]


def report_record(row: TransferRow) -> dict[str, Any]:
    """One transfer as a usage report carries it (``mesh.usage_reports.RECORD_FIELDS``)."""
    return {"transfer_id": row.id, "agreement_id": row.agreement_id, "dataset_id": row.dataset_id,
            "records": row.records, "bytes": row.bytes, "batches": row.batches,
            "started_at": row.started_at, "ended_at": row.ended_at or "",
            "incremental": bool(row.incremental)}


class UsageReporter:
    def __init__(self, usage: UsageStore, registry: RegistryClient, keystore: NodeKeyStore,
                 consent_counts: ConsentCounts | None = None) -> None:
        self.usage = usage
        self.registry = registry
        self.keystore = keystore
        self.consent_counts = consent_counts
        self._wake = asyncio.Event()
        self._counts_sent: list[dict[str, Any]] | None = None
        self._counts_at = 0.0

    def poke(self) -> None:
        self._wake.set()

    async def _due_counts(self) -> list[dict[str, Any]] | None:
        if self.consent_counts is None:
            return None
        counts = await self.consent_counts()
        if counts == self._counts_sent and time.monotonic() - self._counts_at < CONSENT_EVERY:
            return None
        return counts

    async def _send(self, role: str, rows: list[TransferRow],
                    counts: list[dict[str, Any]] | None = None):
        signed = SignedUsageReport.sign(
            self.keystore, seq=await self.usage.next_report_seq(), role=role,
            records=[report_record(r) for r in rows], consent_counts=counts)
        reply = await self.registry.report_usage_signed(signed.to_bytes())
        await self.usage.mark_reported(rows)
        for r in list(reply.rejected) + list(reply.consent_counts_rejected):
            log.warning("usage report entry refused [%s]: %s", r.code, r.message,
                        extra={"transfer": r.transfer_id, "role": role})
        log.info("usage reported (%s): %d new or grown, %d already known, %d consent counts",
                 role, reply.accepted, reply.duplicates, reply.consent_counts_accepted)
        return reply

    async def report_once(self) -> int:
        """Send what is unreported; returns how many transfer rows the registry acknowledged."""
        sent = 0
        provided = await self.usage.unreported(MAX_RECORDS)
        counts = await self._due_counts()
        if provided or counts:
            await self._send("provider", provided, counts)
            sent += len(provided)
            if counts is not None:
                self._counts_sent, self._counts_at = counts, time.monotonic()
        received = await self.usage.unreported_received(MAX_RECORDS)
        if received:
            await self._send("consumer", received)
            sent += len(received)
        return sent

    async def run(self, interval: float, min_gap: float = POKE_GAP) -> None:
        """Report every ``interval`` seconds, and when poked, but at most once per ``min_gap``:
        many small transfers end many times a second, and each report covers all of them."""
        while True:
            try:
                await self.report_once()
            except AreameshError as exc:
                log.warning("usage report deferred: %s", exc.message)
            reported = time.monotonic()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
                await asyncio.sleep(max(0.0, reported + min_gap - time.monotonic()))
            except TimeoutError:
                pass
