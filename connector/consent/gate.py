"""ConsentGate: what a personal-data transfer does to each batch before it leaves.

It keeps only the records of residents whose consent is valid for this consumer (and the
service and component the consumer named) and purpose at the moment the batch is produced; with
``assurance`` (an offer's identityAssurance on personal data, 5-10) only those of them whose ids
on both platforms meet it; and appends the residents sent to the flow ledger.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pyarrow as pa

from connector.consent.assurance import ResidentAssurance
from connector.consent.filter import ConsentFilter, FilteredBatch, count_subjects
from connector.consent.store import ConsentStore
from connector.ledger.chain import FlowBatch, SqliteLedger


@dataclass(frozen=True)
class ConsentGate:
    """Personal data: each batch keeps only consented residents' records, and the residents
    sent are appended to the flow ledger before the batch goes out."""

    consents: ConsentStore
    ledger: SqliteLedger
    filter: ConsentFilter
    flow: FlowBatch
    consumer_participant: str
    assurance: ResidentAssurance | None = None

    async def apply(self, batch: pa.RecordBatch) -> FilteredBatch:
        # one trip to a worker thread: is the cached scope still the newest, and if so the
        # filter; when consent changed, the scope is brought up to date first
        filtered = await asyncio.to_thread(self._filter_if_current, batch)
        if filtered is None:
            scope = await self.consents.scope(
                self.flow.dataset, self.consumer_participant, self.flow.purpose,
                service=self.flow.service, component=self.flow.component)
            filtered = await asyncio.to_thread(self.filter.apply, batch, scope)
        if self.assurance is not None:
            filtered = await self.assurance.narrow(filtered, self.filter.subject_column)
        return filtered

    def _filter_if_current(self, batch: pa.RecordBatch) -> FilteredBatch | None:
        scope = self.consents.current_scope(
            self.flow.dataset, self.consumer_participant, self.flow.purpose,
            service=self.flow.service, component=self.flow.component)
        return None if scope is None else self.filter.apply(batch, scope)

    async def record(self, batch: pa.RecordBatch, filtered: FilteredBatch) -> None:
        """The ledger entry for ``batch``: the filter's own per-resident counts (Arrow arrays,
        straight into the entry), unless the batch was narrowed after filtering (changes only,
        or cut at the record limit)."""
        if batch is filtered.batch:
            subjects, records = filtered.subject_ids, filtered.counts
        else:
            subjects, records = count_subjects(batch.column(self.filter.subject_column))
        await self.ledger.append_batch(self.flow, subjects, records)
