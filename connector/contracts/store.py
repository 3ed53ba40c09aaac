"""AgreementStore: this connector's negotiations and agreements in ``DATA_DIR/contracts.db``.

One row per agreement, as provider or as consumer, with its Dataspace Protocol state
(REQUESTED, AGREED, VERIFIED, FINALIZED, TERMINATED), the signed document, the notarised digest
and when the registry notarised it (kept at FINALIZED, so that showing it needs no registry call)
and, for a termination, the structured reason; and the state of each duty (``duties.py``). The serving
process and the CLI share the file (WAL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import NotFound

STATES = ("REQUESTED", "AGREED", "VERIFIED", "FINALIZED", "TERMINATED")
MIGRATIONS = [
    """
    CREATE TABLE agreements (
        id TEXT PRIMARY KEY,
        role TEXT NOT NULL,
        state TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        offer_id TEXT NOT NULL,
        counterparty TEXT NOT NULL,
        purpose TEXT NOT NULL,
        signed_json TEXT,
        reason_json TEXT,
        digest TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX agreements_by_state ON agreements(state)
    """,
    # 2: each duty of an agreement and its state (connector/contracts/duties.py)
    """
    CREATE TABLE duties (
        agreement_id TEXT NOT NULL REFERENCES agreements(id),
        duty_index INTEGER NOT NULL,
        role TEXT NOT NULL,
        action TEXT NOT NULL,
        within TEXT,
        dataset_id TEXT NOT NULL,
        counterparty TEXT NOT NULL,
        state TEXT NOT NULL,
        data_since TEXT,
        due_at TEXT,
        confirmed_at TEXT,
        note TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL,
        reported TEXT,
        PRIMARY KEY (agreement_id, duty_index)
    );
    CREATE INDEX duties_by_state ON duties(role, state)
    """,
    # 3: when the registry notarised the agreement, kept at FINALIZED (rows finalized before
    # this migration have none: the console says "not recorded" rather than asking the registry)
    """
    ALTER TABLE agreements ADD COLUMN notarised_at TEXT
    """,
]


@dataclass(frozen=True)
class AgreementRow:
    id: str
    role: str
    state: str
    dataset_id: str
    offer_id: str
    counterparty: str
    purpose: str
    signed: dict[str, Any] | None
    reason: dict[str, Any] | None
    digest: str | None
    created_at: str
    updated_at: str
    notarised_at: str | None = None     # ISO 8601 UTC, the registry's time; None if not kept
    # the signed document as stored, text for text (``signed`` is it parsed): what a check of its
    # signatures can be remembered by (``connector/transfer/guard.py``)
    signed_text: str | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "signed_text"}

    def key_fields(self) -> dict[str, str]:
        """The fields ``AgreementStore.save`` needs besides the state: save it again with them."""
        return {"id": self.id, "role": self.role, "dataset_id": self.dataset_id,
                "offer_id": self.offer_id, "counterparty": self.counterparty, "purpose": self.purpose}


def open_contracts_db(data_dir: Path) -> Database:
    return Database(data_dir / "contracts.db", MIGRATIONS, synchronous="FULL")


class AgreementStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, *, id: str, role: str, state: str, dataset_id: str, offer_id: str,
                   counterparty: str, purpose: str, signed: dict | None = None,
                   reason: dict | None = None, digest: str | None = None,
                   notarised_at: str | None = None) -> None:
        """Insert or move the row to ``state``; the documents, the digest and ``notarised_at``
        (ISO 8601) are kept when not given again."""
        if state not in STATES:
            raise ValueError(f"unknown state {state}")
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO agreements(id, role, state, dataset_id, offer_id, counterparty, "
                "purpose, signed_json, reason_json, digest, notarised_at, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "state = excluded.state, signed_json = COALESCE(excluded.signed_json, signed_json),"
                " reason_json = COALESCE(excluded.reason_json, reason_json),"
                " digest = COALESCE(excluded.digest, digest),"
                " notarised_at = COALESCE(excluded.notarised_at, notarised_at),"
                " updated_at = excluded.updated_at",
                (id, role, state, dataset_id, offer_id, counterparty, purpose,
                 json.dumps(signed, ensure_ascii=False) if signed else None,
                 json.dumps(reason, ensure_ascii=False) if reason else None, digest, notarised_at,
                 now, now))

    async def get(self, agreement_id: str, *, role: str | None = None) -> AgreementRow:
        """The row as committed (a read by key on the event loop: ``Database.read``)."""
        sql, params = "SELECT * FROM agreements WHERE id = ?", [agreement_id]
        if role:
            sql += " AND role = ?"
            params.append(role)
        row = await self.db.read(lambda conn: conn.execute(sql, params).fetchone())
        if row is None:
            raise NotFound(f"no agreement {agreement_id} on this connector",
                           message_ja=f"合意 {agreement_id} はこのコネクタにありません")
        return _row(row)

    async def list(self) -> list[AgreementRow]:
        return [_row(r) for r in await self.db.fetchall(
            "SELECT * FROM agreements ORDER BY created_at DESC")]


def _row(r) -> AgreementRow:
    return AgreementRow(r["id"], r["role"], r["state"], r["dataset_id"], r["offer_id"],
                        r["counterparty"], r["purpose"],
                        json.loads(r["signed_json"]) if r["signed_json"] else None,
                        json.loads(r["reason_json"]) if r["reason_json"] else None,
                        r["digest"], r["created_at"], r["updated_at"], r["notarised_at"],
                        r["signed_json"])
