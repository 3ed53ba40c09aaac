"""UsageStore: one row per transfer in ``DATA_DIR/metering.db``, as provider or consumer.

The provider's rows are authoritative: they count transfers and records against an agreement's
limits, and ended ones are reported to the registry (the consumer's ended rows are reported
too, for the registry to cross-check) (``reported_at`` marks what it has
acknowledged, so nothing is lost while the registry is down and nothing is sent twice).
A resumed transfer keeps its row; its counts grow as batches go out. The counts are positional:
batch *n* of a transfer is counted once, however often a broken stream made it leave.

Limits hold under concurrency because a transfer is *reserved* before its first byte leaves, in
one ``BEGIN IMMEDIATE`` transaction that counts the agreement's usage, asks the policy, and
inserts (or, for a resume, claims) the row (``reserve``, ``resume``). While a transfer runs it
counts as a transfer and holds the records it may still send (``reserved_records``, its cap);
when it ends, only what it sent stays counted. A transfer that ended without sending a batch
holds nothing. Rows left ``running`` by a provider that died are released at its next start
(``recover_orphans``); a consumer's, whenever its fetch is found gone (``recover_consumer_orphans``,
asked with ``connector/transfer/fetch_lock.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import Aborted, FailedPrecondition, InvalidRequest, NotFound, PermissionDenied

# What an agreement has used, the transfer ``?`` excluded: a running transfer counts with the
# records it may still send; an interrupted one only if a batch left (or may have: cut off by a
# crash); a sent or complete one always. _COUNTED and _HELD are one row's share; migration 5's
# triggers keep their sums per agreement in ``agreement_usage``, which is what ``_used`` reads;
# _USAGE sums them over the rows themselves (tests check that the two agree).
_COUNTED = ("CASE WHEN status IN ('running', 'sent', 'complete') OR batches > 0 "
            "OR counts_exact = 0 THEN 1 ELSE 0 END")
_HELD = "CASE WHEN status = 'running' THEN MAX(records, COALESCE(reserved_records, 0)) ELSE records END"
_USAGE = (f"SELECT COALESCE(SUM({_COUNTED}), 0) AS n, COALESCE(SUM({_HELD}), 0) AS r "
          "FROM transfers WHERE agreement_id = ? AND role = ? AND id != ?")
_SHARE = (f"SELECT {_COUNTED} AS n, {_HELD} AS r FROM transfers "
          "WHERE id = ? AND agreement_id = ? AND role = ?")

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
    # 2: reservations and resume rules (provider rows). reserved_records: the records a running
    # transfer may send (its record cap, NULL without one). acked_seq: the highest after_seq the
    # consumer has resumed from. counts_exact 0: the provider died while streaming, so the counts
    # are those of its last save (a lower bound) until the transfer is resumed.
    """
    ALTER TABLE transfers ADD COLUMN reserved_records INTEGER;
    ALTER TABLE transfers ADD COLUMN acked_seq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE transfers ADD COLUMN counts_exact INTEGER NOT NULL DEFAULT 1
    """,
    # 3: acknowledgements (``AcknowledgeTransfer``). acked_seq now also rises with the consumer's
    # verified acks. sent_chain: the stream digest up to batch ``batches`` as the provider sent
    # it, so a final ack can be checked after the stream (and the process) is gone.
    """
    ALTER TABLE transfers ADD COLUMN sent_chain TEXT
    """,
    # 4: the number of the last signed usage report sent to the registry (mesh/usage_reports.py)
    """
    CREATE TABLE usage_report_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
    CREATE INDEX transfers_unreported_by_role ON transfers(role, status, reported_at)
    """,
    # 5: what each agreement has used as its limits count it (``_USAGE``), kept by triggers in
    # the transaction that changes a transfer: deciding a limit reads one row instead of summing
    # every transfer of the agreement (a polling app makes thousands a day). A row's share:
    # 1 transfer if running, sent or complete, or if a batch left (or may have); its records,
    # and while running its reservation if larger. An update takes the old share off and adds
    # the new one.
    """
    CREATE TABLE agreement_usage (
        agreement_id TEXT NOT NULL,
        role TEXT NOT NULL,
        transfers INTEGER NOT NULL,
        records INTEGER NOT NULL,
        PRIMARY KEY (agreement_id, role)
    );
    INSERT INTO agreement_usage(agreement_id, role, transfers, records)
        SELECT agreement_id, role,
               SUM(CASE WHEN status IN ('running', 'sent', 'complete') OR batches > 0
                        OR counts_exact = 0 THEN 1 ELSE 0 END),
               SUM(CASE WHEN status = 'running'
                        THEN MAX(records, COALESCE(reserved_records, 0)) ELSE records END)
        FROM transfers GROUP BY agreement_id, role;
    CREATE TRIGGER transfers_usage_insert AFTER INSERT ON transfers BEGIN
        INSERT INTO agreement_usage(agreement_id, role, transfers, records) VALUES (
            NEW.agreement_id, NEW.role,
            CASE WHEN NEW.status IN ('running', 'sent', 'complete') OR NEW.batches > 0
                 OR NEW.counts_exact = 0 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'running'
                 THEN MAX(NEW.records, COALESCE(NEW.reserved_records, 0)) ELSE NEW.records END)
        ON CONFLICT(agreement_id, role) DO UPDATE
            SET transfers = transfers + excluded.transfers, records = records + excluded.records;
    END;
    CREATE TRIGGER transfers_usage_update AFTER UPDATE ON transfers BEGIN
        UPDATE agreement_usage SET
            transfers = transfers - CASE WHEN OLD.status IN ('running', 'sent', 'complete')
                                         OR OLD.batches > 0 OR OLD.counts_exact = 0
                                         THEN 1 ELSE 0 END,
            records = records - CASE WHEN OLD.status = 'running'
                                     THEN MAX(OLD.records, COALESCE(OLD.reserved_records, 0))
                                     ELSE OLD.records END
        WHERE agreement_id = OLD.agreement_id AND role = OLD.role;
        INSERT INTO agreement_usage(agreement_id, role, transfers, records) VALUES (
            NEW.agreement_id, NEW.role,
            CASE WHEN NEW.status IN ('running', 'sent', 'complete') OR NEW.batches > 0
                 OR NEW.counts_exact = 0 THEN 1 ELSE 0 END,
            CASE WHEN NEW.status = 'running'
                 THEN MAX(NEW.records, COALESCE(NEW.reserved_records, 0)) ELSE NEW.records END)
        ON CONFLICT(agreement_id, role) DO UPDATE
            SET transfers = transfers + excluded.transfers, records = records + excluded.records;
    END;
    CREATE TRIGGER transfers_usage_delete AFTER DELETE ON transfers BEGIN
        UPDATE agreement_usage SET
            transfers = transfers - CASE WHEN OLD.status IN ('running', 'sent', 'complete')
                                         OR OLD.batches > 0 OR OLD.counts_exact = 0
                                         THEN 1 ELSE 0 END,
            records = records - CASE WHEN OLD.status = 'running'
                                     THEN MAX(OLD.records, COALESCE(OLD.reserved_records, 0))
                                     ELSE OLD.records END
        WHERE agreement_id = OLD.agreement_id AND role = OLD.role;
    END
    """,
]
# sent: every batch and the summary left, the consumer's final ack is awaited (resumable, from
# its last ack: only the summary if that was the last batch); complete: the final ack arrived.
STATUSES = ("running", "interrupted", "sent", "complete", "failed")
class Capped(Protocol):
    @property
    def max_records(self) -> int | None: ...


C = TypeVar("C", bound=Capped)
Limits = Callable[[int, int], C]
"""Given the (transfers, records) an agreement has used besides this transfer, the decision to
let it run, whose ``max_records`` (None: no cap) is reserved; raises to refuse it."""


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
    reserved_records: int | None = None
    acked_seq: int = 0
    counts_exact: bool = True
    sent_chain: str | None = None

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def open_metering_db(data_dir: Path) -> Database:
    return Database(data_dir / "metering.db", MIGRATIONS, synchronous="FULL")


class UsageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def start(self, *, id: str, role: str, agreement_id: str, dataset_id: str,
                    provider: str, consumer: str, version: str, incremental: bool) -> None:
        """A row without limits to check: the consumer's side of a transfer."""
        await self.db.write(lambda conn: _insert(
            conn, id, role, agreement_id, dataset_id, provider, consumer, version, incremental,
            None))

    async def reserve(self, *, id: str, agreement_id: str, dataset_id: str, provider: str,
                      consumer: str, version: str, incremental: bool, limits: Limits[C]) -> C:
        """Start the provider's transfer ``id`` if ``limits`` allows it given the agreement's
        usage so far, and reserve the records it may send: counting, deciding and inserting are
        one transaction, so concurrent requests cannot together pass a limit (a transaction
        shared with other writes: ``Database.write``; ``limits`` runs in the database thread
        and must be quick, plain code)."""
        def work(conn: sqlite3.Connection) -> C:
            decision = limits(*_used(conn, agreement_id, id))
            _insert(conn, id, "provider", agreement_id, dataset_id, provider, consumer, version,
                    incremental, decision.max_records)
            return decision

        return await self.db.write(work)

    async def resume(self, transfer_id: str, *, agreement_id: str, consumer: str, after_seq: int,
                     version: str, limits: Limits[C]) -> tuple[TransferRow, C]:
        """Claim the provider's unfinished transfer ``transfer_id`` for a resumed stream, in one
        transaction. Refused: another agreement's or consumer's transfer (``not_a_party``), a
        complete one (``transfer_complete``), one being streamed now (``transfer_in_progress``),
        a resume from before the batch the consumer already acknowledged (``resume_behind_ack``)
        or past the last batch sent (``resume_beyond_sent``), a changed dataset
        (``source_changed``), and whatever ``limits`` refuses (this transfer is not counted
        again; its cap is reserved anew)."""
        def work(conn: sqlite3.Connection) -> tuple[TransferRow, C]:
            found = conn.execute("SELECT * FROM transfers WHERE id = ? AND role = 'provider'",
                                 (transfer_id,)).fetchone()
            if found is None:
                raise NotFound(f"this provider has no transfer {transfer_id}",
                               message_ja=f"転送 {transfer_id} はありません", code="unknown_transfer")
            row = _row(found)
            _check_resume(row, agreement_id, consumer, after_seq, version)
            decision = limits(*_used(conn, agreement_id, transfer_id))
            conn.execute(
                "UPDATE transfers SET status = 'running', acked_seq = MAX(acked_seq, ?), "
                "reserved_records = ?, ended_at = NULL WHERE id = ?",
                (after_seq, decision.max_records, transfer_id))
            return row, decision

        return await self.db.write(work)

    async def release(self, transfer_id: str) -> None:
        """A running transfer that stops before its stream began: interrupted, its counts kept,
        its reservation freed."""
        ended = iso(utcnow())
        await self.db.write(_statement(
            "UPDATE transfers SET status = 'interrupted', ended_at = ? "
            "WHERE id = ? AND status = 'running'", (ended, transfer_id)))

    async def recover_orphans(self) -> int:
        """At start: provider transfers still ``running`` were streamed by a process that died.
        They become interrupted (resumable, reported) with the counts of their last save, which
        may be short of what left: ``counts_exact`` 0 until a resume counts them again."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE transfers SET status = 'interrupted', counts_exact = 0, "
                "ended_at = COALESCE(ended_at, ?) WHERE role = 'provider' AND status = 'running'",
                (iso(utcnow()),))
            return cur.rowcount

    async def recover_consumer_orphans(self, is_live: Callable[[TransferRow], bool]
                                       ) -> list[TransferRow]:
        """Consumer transfers still ``running`` whose fetch is gone (``is_live`` says so: a CLI
        fetch killed with kill -9, a connector that died while fetching) become interrupted,
        their counts kept; running the same fetch again resumes it and its row runs again.
        ``is_live`` is asked inside the write transaction: a fetch that starts meanwhile
        records its progress only after the update, so it is never left marked interrupted.
        Returns the rows changed (as they were)."""
        if await self.db.fetchone("SELECT 1 FROM transfers WHERE role = 'consumer' AND "
                                  "status = 'running' LIMIT 1") is None:
            return []   # the usual case, read without taking the write lock
        async with self.db.transaction() as conn:
            rows = [_row(r) for r in await (await conn.execute(
                "SELECT * FROM transfers WHERE role = 'consumer' AND status = 'running'")).fetchall()]
            dead = [r for r in rows if not is_live(r)]
            await conn.executemany(
                "UPDATE transfers SET status = 'interrupted', ended_at = COALESCE(ended_at, ?) "
                "WHERE id = ? AND role = 'consumer' AND status = 'running'",
                [(iso(utcnow()), r.id) for r in dead])
        return dead

    async def progress(self, transfer_id: str, *, records: int, bytes: int, batches: int,
                       status: str = "running", chain: str | None = None) -> None:
        """Record the counts so far (due to be reported when they changed) and, on the provider,
        ``chain``, the stream digest up to batch ``batches``; a final status also stamps the end
        time. Counts are positional and never go down: a resumed stream cut off before the
        furthest batch ever sent leaves that batch's counts (and their exactness) as they were.
        A transfer the consumer has acknowledged complete stays so."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status}")
        ended = None if status == "running" else iso(utcnow())
        await self.db.write(_statement(  # SET expressions all see the row as it was
            "UPDATE transfers SET reported_at = CASE WHEN (CASE WHEN :b >= batches THEN :r "
            "ELSE records END, CASE WHEN :b >= batches THEN :y ELSE bytes END, "
            "MAX(batches, :b), :s) IS (records, bytes, batches, status) THEN reported_at END, "
            "records = CASE WHEN :b >= batches THEN :r ELSE records END, "
            "bytes = CASE WHEN :b >= batches THEN :y ELSE bytes END, "
            "counts_exact = CASE WHEN :b >= batches THEN 1 ELSE counts_exact END, "
            "sent_chain = CASE WHEN :b >= batches THEN COALESCE(:c, sent_chain) "
            "ELSE sent_chain END, batches = MAX(batches, :b), status = :s, "
            "ended_at = COALESCE(:e, ended_at) WHERE id = :id AND status != 'complete'",
            {"r": records, "y": bytes, "b": batches, "s": status, "c": chain, "e": ended,
             "id": transfer_id}))

    async def acknowledge(self, transfer_id: str, acked_seq: int) -> tuple[int, bool]:
        """The provider's transfer acknowledged up to ``acked_seq`` (already verified): the
        acknowledged batch only rises; acknowledging the last batch once the summary has left
        completes the transfer. Returns (acknowledged batch, complete?) once durable."""
        def work(conn: sqlite3.Connection) -> tuple[int, bool]:
            conn.execute(
                "UPDATE transfers SET status = CASE WHEN status = 'sent' AND ? = batches "
                "THEN 'complete' ELSE status END, acked_seq = MAX(acked_seq, ?) "
                "WHERE id = ? AND role = 'provider'", (acked_seq, acked_seq, transfer_id))
            row = conn.execute("SELECT acked_seq, status FROM transfers WHERE id = ?",
                               (transfer_id,)).fetchone()
            return int(row["acked_seq"]), row["status"] == "complete"

        return await self.db.write(work)

    async def get(self, transfer_id: str, role: str | None = None) -> TransferRow:
        row = await self.db.read(lambda conn: conn.execute(
            "SELECT * FROM transfers WHERE id = ? AND role = COALESCE(?, role)",
            (transfer_id, role)).fetchone())
        if row is None:
            raise NotFound(f"no transfer {transfer_id}", message_ja=f"転送 {transfer_id} はありません",
                           code="unknown_transfer")
        return _row(row)

    async def used(self, agreement_id: str, *, exclude: str = "") -> tuple[int, int]:
        """(transfers, records) an agreement has used as its limits count them (running
        transfers with their reservations), the transfer ``exclude`` left out. A read outside
        any reservation: only good for refusing early."""
        return await self.db.read(lambda conn: _used(conn, agreement_id, exclude))

    async def first_data_since(self, agreement_id: str, role: str, after: str | None) -> str | None:
        """When the first transfer of the agreement (on ``role``'s side) that carried records
        started, among those started after ``after`` (ISO 8601; None: all), or None."""
        row = await self.db.read(lambda conn: conn.execute(
            "SELECT MIN(started_at) FROM transfers WHERE agreement_id = ? AND role = ? "
            "AND records > 0 AND (? IS NULL OR started_at > ?)",
            (agreement_id, role, after, after)).fetchone())
        return row[0] if row else None

    async def last_complete(self, agreement_id: str, role: str = "consumer") -> TransferRow | None:
        row = await self.db.fetchone(
            "SELECT * FROM transfers WHERE agreement_id = ? AND role = ? AND status = 'complete' "
            "ORDER BY ended_at DESC, rowid DESC LIMIT 1", (agreement_id, role))
        return _row(row) if row else None

    async def unreported(self, limit: int = 500) -> list[TransferRow]:
        """The provider's ended transfers that sent something and whose counts the registry has
        not acknowledged: complete and sent ones, and interrupted ones (what left is metered even
        if the consumer never comes back; a resume reports the grown counts again)."""
        rows = await self.db.fetchall(
            "SELECT * FROM transfers WHERE role = 'provider' AND status IN ('complete', 'sent', "
            "'interrupted') AND reported_at IS NULL AND batches > 0 ORDER BY ended_at LIMIT ?",
            (limit,))
        return [_row(r) for r in rows]

    async def unreported_received(self, limit: int = 500) -> list[TransferRow]:
        """The consumer's transfers that received something, ended (complete, failed or
        interrupted) and are not yet acknowledged by the registry: the consumer's side of the
        metering, which the registry cross-checks against the provider's."""
        rows = await self.db.fetchall(
            "SELECT * FROM transfers WHERE role = 'consumer' AND status != 'running' "
            "AND reported_at IS NULL AND batches > 0 ORDER BY ended_at LIMIT ?", (limit,))
        return [_row(r) for r in rows]

    async def next_report_seq(self) -> int:
        """The number of the next usage report (1, 2, …), kept across restarts."""
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT INTO usage_report_seq(id, seq) VALUES (1, 1) "
                         "ON CONFLICT(id) DO UPDATE SET seq = seq + 1")
            return int(conn.execute("SELECT seq FROM usage_report_seq").fetchone()[0])

        return await self.db.write(work)

    async def mark_reported(self, rows: list[TransferRow]) -> None:
        """Mark ``rows`` reported, each only if its counts are still the ones reported."""
        now = iso(utcnow())
        await self.db.write(_statement(
            "UPDATE transfers SET reported_at = ? WHERE id = ? AND records = ? AND bytes = ? "
            "AND batches = ? AND status = ?",
            [(now, r.id, r.records, r.bytes, r.batches, r.status) for r in rows], many=True))

    async def list(self, agreement_id: str | None = None) -> list[TransferRow]:
        sql, params = "SELECT * FROM transfers", []
        if agreement_id:
            sql += " WHERE agreement_id = ?"
            params.append(agreement_id)
        return [_row(r) for r in await self.db.fetchall(sql + " ORDER BY started_at DESC", params)]


def _statement(sql: str, params, *, many: bool = False) -> Callable[[sqlite3.Connection], int]:
    """One statement (or one per parameter set) as ``Database.write`` work: its row count."""
    def work(conn: sqlite3.Connection) -> int:
        return (conn.executemany if many else conn.execute)(sql, params).rowcount

    return work


def _insert(conn: sqlite3.Connection, id: str, role: str, agreement_id: str, dataset_id: str,
            provider: str, consumer: str, version: str, incremental: bool,
            reserved: int | None) -> None:
    conn.execute(
        "INSERT INTO transfers(id, role, agreement_id, dataset_id, provider, consumer, version,"
        " incremental, status, started_at, reserved_records) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
        (id, role, agreement_id, dataset_id, provider, consumer, version, int(incremental),
         iso(utcnow()), reserved))


def _used(conn: sqlite3.Connection, agreement_id: str, exclude: str) -> tuple[int, int]:
    """What ``_USAGE`` counts, from the per-agreement sums: two reads by key."""
    total = conn.execute("SELECT transfers, records FROM agreement_usage WHERE agreement_id = ? "
                         "AND role = 'provider'", (agreement_id,)).fetchone()
    if total is None:
        return 0, 0
    n, r = int(total[0]), int(total[1])
    if exclude:
        share = conn.execute(_SHARE, (exclude, agreement_id, "provider")).fetchone()
        if share is not None:
            n, r = n - int(share[0]), r - int(share[1])
    return n, r


def _row(r) -> TransferRow:
    return TransferRow(r["id"], r["role"], r["agreement_id"], r["dataset_id"], r["provider"],
                       r["consumer"], r["version"], bool(r["incremental"]), r["status"],
                       r["records"], r["bytes"], r["batches"], r["started_at"], r["ended_at"],
                       r["reported_at"], r["reserved_records"], r["acked_seq"],
                       bool(r["counts_exact"]), r["sent_chain"])


def _check_resume(row: TransferRow, agreement_id: str, consumer: str, after_seq: int,
                  version: str) -> None:
    if row.agreement_id != agreement_id or row.consumer != consumer:
        raise PermissionDenied(f"transfer {row.id} does not belong to this agreement and consumer",
                               message_ja="この転送は別の合意・利用者のものです", code="not_a_party")
    if row.status == "complete":
        raise FailedPrecondition(
            f"transfer {row.id} is complete ({row.batches} batches, {row.records} records, "
            "acknowledged by the consumer); it "
            "cannot be asked for again: start a new transfer (connector fetch --restart)",
            message_ja=f"転送 {row.id} は完了しています。再取得は新しい転送として行ってください"
                       "（--restart）", code="transfer_complete")
    if row.status == "running":
        raise Aborted(f"transfer {row.id} is being streamed now; resume it once that stream ends",
                      message_ja=f"転送 {row.id} は送信中です。その送信が終わってから再開してください",
                      code="transfer_in_progress")
    if after_seq < row.acked_seq:
        raise FailedPrecondition(
            f"batches up to {row.acked_seq} of transfer {row.id} were acknowledged; it resumes "
            f"after {row.acked_seq} or later, not after {after_seq}",
            message_ja=f"転送 {row.id} はバッチ {row.acked_seq} まで受信確認済みです。"
                       "それより前からは再開できません", code="resume_behind_ack",
            details={"acked_seq": row.acked_seq})
    if row.counts_exact and after_seq > row.batches:
        raise InvalidRequest(
            f"after_seq {after_seq} is past the {row.batches} batches sent in transfer {row.id}",
            message_ja=f"転送 {row.id} で送信済みのバッチは {row.batches} までです",
            code="resume_beyond_sent", details={"sent": row.batches})
    if row.version != version:
        raise FailedPrecondition(
            f"dataset {row.dataset_id} changed since transfer {row.id} began "
            f"({row.version} → {version}); start the transfer again",
            message_ja="転送開始後にデータが更新されました。最初から取得し直してください",
            code="source_changed", details={"was": row.version, "now": version})
