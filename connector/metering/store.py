"""UsageStore: one row per transfer in ``DATA_DIR/metering.db``, as provider or consumer.

The provider's rows are authoritative: they count transfers and records against an agreement's
limits, and finished ones are reported to the registry (``reported_at`` marks what it has
acknowledged, so nothing is lost while the registry is down and nothing is sent twice).
A resumed transfer keeps its row; its counts grow as batches go out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import NotFound

MIGRATIONS = [
    """
    CREATE TABLE transfers (
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('provider', 'consumer')),
        agreement_id TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        provider TEXT NOT NULL,
        consumer TEXT NOT NULL,
        version TEXT NOT NULL,
        incremental INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        records INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        batches INTEGER NOT NULL DEFAULT 0,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        reported_at TEXT
    );
    CREATE INDEX transfers_by_agreement ON transfers(agreement_id);
    CREATE INDEX transfers_unreported ON transfers(status, reported_at)
    """,
]
STATUSES = ("running", "interrupted", "complete", "failed")


@dataclass(frozen=True)
class TransferRow:
    id: str
    role: str
    agreement_id: str
    dataset_id: str
    provider: str
    consumer: str
    version: str
    incremental: bool
    status: str
    records: int
    bytes: int
    batches: int
    started_at: str
    ended_at: str | None
    reported_at: str | None

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def open_metering_db(data_dir: Path) -> Database:
    return Database(data_dir / "metering.db", MIGRATIONS, synchronous="FULL")


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self, *, id: str, role: str, agreement_id: str, dataset_id: str,
                    provider: str, consumer: str, version: str, incremental: bool) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO transfers(id, role, agreement_id, dataset_id, provider, consumer, version,"
                " incremental, status, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (id, role, agreement_id, dataset_id, provider, consumer, version, int(incremental),
                 iso(utcnow())))

    async def progress(self, transfer_id: str, *, records: int, bytes: int, batches: int,
                       status: str = "running") -> None:
        """Record the counts so far; a final status also stamps the end time."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status}")
        ended = None if status == "running" else iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE transfers SET records = ?, bytes = ?, batches = ?, status = ?, "
                "ended_at = COALESCE(?, ended_at) WHERE id = ?",
                (records, bytes, batches, status, ended, transfer_id))

    async def get(self, transfer_id: str) -> TransferRow:
        row = await self.db.fetchone("SELECT * FROM transfers WHERE id = ?", (transfer_id,))
        if row is None:
            raise NotFound(f"no transfer {transfer_id}", message_ja=f"転送 {transfer_id} はありません",
                           code="unknown_transfer")
        return _row(row)

    async def so_far(self, agreement_id: str, *, role: str = "provider",
                     exclude: str | None = None) -> tuple[int, int]:
        """(transfers, records) already made under an agreement, the one being resumed excluded."""
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS n, COALESCE(SUM(records), 0) AS r FROM transfers "
            "WHERE agreement_id = ? AND role = ? AND id != ?", (agreement_id, role, exclude or ""))
        assert row is not None
        return int(row["n"]), int(row["r"])

    async def last_complete(self, agreement_id: str, role: str = "consumer") -> TransferRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM transfers WHERE agreement_id = ? AND role = ? AND status = 'complete' "
            "ORDER BY ended_at DESC, rowid DESC LIMIT 1", (agreement_id, role))
        return _row(row) if row else None

    async def unreported(self, limit: int = 500) -> list[TransferRow]:
        rows = await self.db.fetchall(
            "SELECT * FROM transfers WHERE role = 'provider' AND status = 'complete' "
            "AND reported_at IS NULL ORDER BY ended_at LIMIT ?", (limit,))
        return [_row(r) for r in rows]

    async def mark_reported(self, ids: list[str]) -> None:
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.executemany("UPDATE transfers SET reported_at = ? WHERE id = ?",
                                   [(now, i) for i in ids])

    async def list(self, agreement_id: str | None = None) -> list[TransferRow]:
        sql, params = "SELECT * FROM transfers", []
        if agreement_id:
            sql += " WHERE agreement_id = ?"
            params.append(agreement_id)
        return [_row(r) for r in await self.db.fetchall(sql + " ORDER BY started_at DESC", params)]


def _row(r) -> TransferRow:
    return TransferRow(r["id"], r["role"], r["agreement_id"], r["dataset_id"], r["provider"],
                       r["consumer"], r["version"], bool(r["incremental"]), r["status"],
                       r["records"], r["bytes"], r["batches"], r["started_at"], r["ended_at"],
                       r["reported_at"])
