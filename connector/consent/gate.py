"""ConsentGate: what a personal-data transfer does to each batch before it leaves.

It keeps only the records of residents whose consent is valid for this consumer (and the
service and component the consumer named) and purpose at the moment the batch is produced; with
``assurance`` (an offer's identityAssurance on personal data, 5-10) only those of them whose ids
on both platforms meet it; and appends the residents sent to the flow ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from connector.consent.assurance import ResidentAssurance
from connector.consent.filter import ConsentFilter, FilteredBatch, count_subjects
from connector.consent.store import ConsentStore
from connector.ledger.chain import FlowBatch, SqliteLedger

# ``finish(kept)``: the kept records as they will be sent (typed) and how to encode them
Finish = Callable[[pa.RecordBatch], tuple[pa.RecordBatch, Callable[[pa.RecordBatch], Any]]]
_ENCODER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="consent-encode")
_STALE = object()


@dataclass(frozen=True)
class Prepared:
    """A batch ready to go out: its entry is in the flow ledger."""

    filtered: FilteredBatch
    batch: pa.RecordBatch       # the kept records as sent (typed)
    pieces: Any                 # what ``finish``'s encoder returned


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

    async def prepare(self, batch: pa.RecordBatch, finish: Finish) -> Prepared | None:
        """All a batch needs before it may go out, in one trip to a worker thread: the consent
        check and filter (as ``apply``), ``finish`` of the kept records (typing and encoding:
        ``(batch, pieces)``), and the flow-ledger entry, stored and synced. None when no record
        is kept (nothing to record or send). An error anywhere — the entry cannot be stored —
        raises, and the batch is not sent.

        The entry is written only after the filter and ``finish``'s first step, as ``record``
        is; the encoding runs beside the ledger's sync. When consent changed since the cached
        scope (or ``assurance`` narrows the batch, which asks the identity service), the scope
        is brought up to date on the event loop first and the rest is one trip as above."""
        if self.assurance is None:
            done = await asyncio.to_thread(self._prepare_if_current, batch, finish)
            if done is not _STALE:
                return done
        filtered = await self.apply(batch)
        return await asyncio.to_thread(self._finish_and_record, batch, filtered, finish)

    def _prepare_if_current(self, batch: pa.RecordBatch, finish: Finish) -> Prepared | None:
        filtered = self._filter_if_current(batch)
        if filtered is None:
            return _STALE     # type: ignore[return-value]
        return self._finish_and_record(batch, filtered, finish)

    def _finish_and_record(self, batch: pa.RecordBatch, filtered: FilteredBatch,
                           finish: Finish) -> Prepared | None:
        if filtered.batch.num_rows == 0:
            return None
        typed, encode = finish(filtered.batch)
        if typed is filtered.batch:
            subjects, records = filtered.subject_ids, filtered.counts
        else:
            subjects, records = count_subjects(typed.column(self.filter.subject_column))
        pieces = _ENCODER.submit(encode, typed)           # beside the ledger's sync
        try:
            self.ledger.append_batch_blocking(self.flow, subjects, records)
        except BaseException:
            pieces.cancel()
            raise
        return Prepared(filtered, typed, pieces.result())

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
