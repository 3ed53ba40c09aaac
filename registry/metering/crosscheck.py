"""Cross-check of the provider's and the consumer's reports of the same transfer (issue 14).

Per transfer that ended in the period (by either side's end time), one row with both sides'
figures and a status:

- ``agree``: both reported, records, bytes and batches equal;
- ``differ``: both reported, some count differs;
- ``missing_consumer`` / ``missing_provider``: one side reported more than ``grace`` ago and the
  other never did;
- ``pending``: one side reported within ``grace`` (the other may still be on its way: reports go
  out every heartbeat interval, and a node that is down reports when it is back).

Every status but ``agree`` and ``pending`` is flagged. Rows are ordered flagged first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database
from registry.metering.figures import period_bounds
from registry.metering.usage import PROVIDER_ORG, Period

DEFAULT_GRACE = timedelta(hours=1)
FLAGGED = ("differ", "missing_consumer", "missing_provider")
_COUNTS = ("records", "bytes", "batches")


async def crosscheck(db: Database, period: Period, *, grace: timedelta = DEFAULT_GRACE,
                     only: str | None = None) -> dict[str, Any]:
    """``{"period", "grace_seconds", "counts": {status: n}, "transfers": [row, …]}``; a row:
    ``transfer_id, agreement_id, dataset_id, provider_org, consumer_org, status, provider:
    {records, bytes, batches, ended_at, reported_at} | None, consumer: {…} | None``.
    ``only``: transfers where that participant is the provider or the consumer organisation."""
    start, end = period_bounds(period)
    cutoff = iso(utcnow() - grace)
    cols = "transfer_id, agreement_id, dataset_id, records, bytes, batches, ended_at, reported_at"
    provided = {r["transfer_id"]: dict(r) for r in await db.fetchall(
        f"SELECT {cols}, {PROVIDER_ORG} AS provider_org, COALESCE(consumer_org, "
        "consumer_participant) AS consumer_org FROM usage_records u WHERE (ended_at >= ? AND "
        "ended_at < ?) OR transfer_id IN (SELECT transfer_id FROM usage_consumer_records WHERE "
        "ended_at >= ? AND ended_at < ?)", (start, end, start, end))}
    received = {r["transfer_id"]: dict(r) for r in await db.fetchall(
        f"SELECT {cols}, consumer_org, (SELECT COALESCE(d.publisher_id, '') FROM datasets d "
        "WHERE d.id = c.dataset_id) AS provider_org FROM usage_consumer_records c "
        "WHERE (ended_at >= ? AND ended_at < ?) OR transfer_id IN (SELECT transfer_id FROM "
        "usage_records WHERE ended_at >= ? AND ended_at < ?)", (start, end, start, end))}
    rows = []
    for tid in sorted(set(provided) | set(received)):
        p, c = provided.get(tid), received.get(tid)
        base = p or c
        assert base is not None
        if p and c:
            status = "agree" if all(p[k] == c[k] for k in _COUNTS) else "differ"
        else:
            seen = base["reported_at"]
            status = "pending" if seen > cutoff else (
                "missing_consumer" if p else "missing_provider")
        owners = (p or {}).get("provider_org") or (c or {}).get("provider_org"), base["consumer_org"]
        if only is not None and only not in owners:
            continue
        rows.append({"transfer_id": tid, "agreement_id": base["agreement_id"],
                     "dataset_id": base["dataset_id"], "provider_org": owners[0],
                     "consumer_org": owners[1], "status": status,
                     "provider": _side(p), "consumer": _side(c)})
    rows.sort(key=lambda r: (r["status"] not in FLAGGED, r["transfer_id"]))
    counts = dict.fromkeys(("agree", "pending", *FLAGGED), 0)
    for r in rows:
        counts[r["status"]] += 1
    return {"period": period.to_json(), "grace_seconds": int(grace.total_seconds()),
            "counts": counts, "flagged": sum(counts[s] for s in FLAGGED), "transfers": rows}


def _side(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: row[k] for k in (*_COUNTS, "ended_at", "reported_at")}
