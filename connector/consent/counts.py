"""Consented residents per personal dataset, for the registry's metering (appendix 4-4).

Counts only: how many distinct residents, and how many consents, are valid now for each personal
dataset this connector serves (a consent for ``"*"`` covers every personal dataset). Never who:
no resident id leaves this module.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from connector.datasets.store import PublisherStore, all_publishers
from mesh.clock import iso, utcnow
from mesh.datasets import PERSONAL_CLASSES
from mesh.db import Database


def personal_dataset_ids(data_dir: Path) -> list[str]:
    """The personal (and pseudonymised, personally-related) datasets published from ``data_dir``."""
    found = set()
    for pid in all_publishers(data_dir):
        for doc in PublisherStore(data_dir, pid).list():
            if doc.get("classification") in PERSONAL_CLASSES or doc.get("personal"):
                found.add(doc["id"])
    return sorted(found)


async def consent_counts(db: Database, dataset_ids: list[str], *, at: datetime | None = None
                         ) -> list[dict[str, Any]]:
    """``[{"dataset_id", "residents", "consents"}]`` for each of ``dataset_ids``: the consents
    neither withdrawn nor expired at ``at`` (default now), for that dataset or for ``"*"``."""
    now = iso(at or utcnow())
    out = []
    for dataset_id in dataset_ids:
        row = await db.fetchone(
            "SELECT COUNT(DISTINCT resident) AS residents, COUNT(*) AS consents FROM consents "
            "WHERE dataset_id IN (?, '*') AND withdrawn_at IS NULL "
            "AND (expires_at IS NULL OR expires_at > ?)", (dataset_id, now))
        out.append({"dataset_id": dataset_id, "residents": int(row["residents"]),
                    "consents": int(row["consents"])})
    return out
