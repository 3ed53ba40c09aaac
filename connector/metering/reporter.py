"""UsageReporter: sends ended transfers (provider side) to the registry's metering.

Runs every heartbeat interval and right after a transfer completes (``poke``). Complete and
interrupted transfers are sent (what left is metered even if the consumer never resumes); a
transfer is sent again when a resume has grown its counts. Rows are marked reported only once
the registry has answered, and only if their counts are still those sent; the registry keeps
one row per transfer id and only ever raises its counts, so a crash or an unreachable registry
delays reports but never loses or doubles them.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.timestamp_pb2 import Timestamp

from connector.metering.store import TransferRow, UsageStore
from connector.registry_client import RegistryClient
from mesh.clock import from_iso, timestamp
from mesh.errors import AreameshError
from mesh.proto.areamesh.v1 import registry_pb2

log = logging.getLogger("areamesh.connector.metering")


def _ts(text: str | None) -> Timestamp:
    return timestamp(from_iso(text)) if text else Timestamp()  # unset when there is no time


def usage_record(row: TransferRow) -> registry_pb2.UsageRecord:
    return registry_pb2.UsageRecord(
        transfer_id=row.id, agreement_id=row.agreement_id, dataset_id=row.dataset_id,
        records=row.records, bytes=row.bytes, batches=row.batches, started_at=_ts(row.started_at),
        ended_at=_ts(row.ended_at), incremental=row.incremental)


class UsageReporter:
    def __init__(self, usage: UsageStore, registry: RegistryClient) -> None:
        self.usage = usage
        self.registry = registry
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def report_once(self) -> int:
        """Send what is unreported; returns how many rows the registry acknowledged."""
        rows = await self.usage.unreported()
        if not rows:
            return 0
        reply = await self.registry.report_usage([usage_record(r) for r in rows])
        await self.usage.mark_reported(rows)
        log.info("usage reported: %d new or grown, %d already known", reply.accepted, reply.duplicates)
        return len(rows)

    async def run(self, interval: float) -> None:
        while True:
            try:
                await self.report_once()
            except AreameshError as exc:
                log.warning("usage report deferred: %s", exc.message)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
