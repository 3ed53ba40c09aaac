"""The transfers as the pages and the progress JSON show them: rows of ``metering.db``
(``UsageStore``, both roles) joined with the live figures of the console's own fetches, and
the consumer's unfinished fetches (``TransferJournal`` files) with what resuming them does."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.metering.store import TransferRow, UsageStore
from connector.transfer.constants import staging_dir
from connector.transfer.journal import TransferJournal
from connector.web.node.common import Scope
from connector.web.transfers.jobs import FetchJob, FetchJobs, downloads_dir
from mesh.clock import from_iso, utcnow

PER_PAGE = 20
ENDED = ("complete", "failed", "interrupted", "sent")


def rates(row: TransferRow) -> tuple[float, float]:
    """Average (records, bytes) a second since the transfer began (for a row without live
    figures: what ``metering.db`` holds, saved every second by a provider, at every
    acknowledgement by a consumer)."""
    try:
        began = from_iso(row.started_at)
    except ValueError:
        return 0.0, 0.0
    end = from_iso(row.ended_at) if row.ended_at else utcnow()
    dt = max((end - began).total_seconds(), 1e-3)
    return row.records / dt, row.bytes / dt


def transfer_json(row: TransferRow, job: FetchJob | None = None) -> dict[str, Any]:
    records, size, batches = row.records, row.bytes, row.batches
    rate_records, rate_bytes = rates(row)
    if job is not None and job.active:        # the console's own fetch: figures of this moment
        records, size, batches = job.progress.records, job.progress.bytes, job.progress.batches
        rate_records, rate_bytes = job.progress.rates()
    return {"id": row.id, "role": row.role, "status": row.status,
            "agreement_id": row.agreement_id, "dataset_id": row.dataset_id,
            "peer": row.consumer if row.role == "provider" else row.provider,
            "records": records, "bytes": size, "batches": batches,
            "acked_seq": row.acked_seq, "rate_records": round(rate_records, 1),
            "rate_bytes": round(rate_bytes, 1), "started_at": row.started_at,
            "ended_at": row.ended_at, "incremental": row.incremental,
            "job": job.id if job else None}


@dataclass(frozen=True)
class Resumable:
    """An unfinished fetch of this node (its journal) and how it goes on."""

    agreement_id: str
    out: str
    fmt: str
    transfer_id: str
    acked_seq: int
    records: int
    bytes: int
    mapping: bool
    in_downloads: bool        # resumable from the console (same file, no mapping)
    sink: str | None = None   # a fetch into this sink (its staging file): resumed by --sink

    @property
    def file_name(self) -> str:
        return Path(self.out).name


def resumable(data_dir: Path, scope: Scope) -> list[Resumable]:
    """The journals under ``DATA_DIR/transfers/``: each fetch that stopped before its end.
    Running ``areamesh connector fetch`` with the same agreement and ``--out`` resumes it after
    its last acknowledged batch (``Fetcher``: ``TransferJournal.load_or_new``)."""
    if not scope.consumer_side:
        return []
    root, found = data_dir / "transfers", []
    downloads = downloads_dir(data_dir).resolve()
    staging = staging_dir(data_dir).resolve()
    for path in sorted(root.glob("*/*.json")) if root.is_dir() else []:
        try:
            j = TransferJournal.read(path)
        except (OSError, ValueError, TypeError, json.JSONDecodeError):
            continue
        out = Path(j.out)
        prefix, sink = f"{j.agreement_id}.", None
        if out.parent == staging and out.name.startswith(prefix) and out.name.endswith(".arrow"):
            sink = out.name[len(prefix):-len(".arrow")]
        found.append(Resumable(j.agreement_id, j.out, j.fmt, j.transfer_id, j.acked_seq, j.records,
                               j.bytes, bool(j.mapping_digest),
                               (out.parent == downloads or sink is not None) and not j.mapping_digest,
                               sink))
    return found


async def transfer_rows(usage: UsageStore, scope: Scope) -> list[TransferRow]:
    return [r for r in await usage.list() if scope.sees(r.role, r.dataset_id)]


def running_json(rows: list[TransferRow], jobs: FetchJobs, scope: Scope) -> dict[str, Any]:
    """The progress JSON: running transfers (both roles) and the console's fetches."""
    by_transfer = {j.progress.transfer_id: j for j in jobs.all() if j.progress.transfer_id}
    fetches = [j.to_json() for j in jobs.all()] if scope.consumer_side else []
    return {"now": utcnow().isoformat(),
            "running": [transfer_json(r, by_transfer.get(r.id)) for r in rows
                        if r.status == "running"],
            "fetches": fetches}


def page_of(items: list, page: int) -> tuple[list, int]:
    pages = max(1, -(-len(items) // PER_PAGE))
    page = min(max(page, 1), pages)
    return items[(page - 1) * PER_PAGE:page * PER_PAGE], pages
