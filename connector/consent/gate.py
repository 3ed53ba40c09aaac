"""ConsentGate: what a personal-data transfer does to each batch before it leaves.

It keeps only the records of residents whose consent is valid for this consumer and purpose
at the moment the batch is produced, and appends the residents sent to the flow ledger.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from connector.consent.filter import ConsentFilter, FilteredBatch
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

    async def apply(self, batch: pa.RecordBatch) -> FilteredBatch:
        scope = await self.consents.scope(self.flow.dataset, self.consumer_participant, self.flow.purpose)
        return await asyncio.to_thread(self.filter.apply, batch, scope)

    async def record(self, batch: pa.RecordBatch, filtered: FilteredBatch) -> None:
        """Ledger entries for ``batch``: the filter's own per-resident counts, unless the batch
        was narrowed after filtering (changes only, or cut at the record limit)."""
        if batch is filtered.batch:
            subjects, records = filtered.subjects, filtered.records
        else:
            counts = pc.value_counts(batch.column(self.filter.subject_column).cast(pa.string()))
            subjects, records = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
        await self.ledger.append_batch(self.flow, subjects, records)
