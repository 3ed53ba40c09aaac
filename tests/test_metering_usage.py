"""UsageStore's limit counts (issue 18): the per-agreement sums its triggers keep are what summing
every transfer row gives, through every kind of change and for rows that existed before the
migration; and limits still hold when many reservations share one commit."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import uuid
from dataclasses import dataclass

import pytest

from connector.metering.store import _USAGE, MIGRATIONS, UsageStore, _used, open_metering_db
from mesh.db import Database
from mesh.errors import AreameshError, PermissionDenied

AGREEMENTS = ("a-1", "a-2", "a-3")


@dataclass(frozen=True)
class Capped:
    max_records: int | None


def limits(max_transfers: int | None = None, max_records: int | None = None, cap: int | None = None):
    """A stand-in for ``Authorised.limits``: refuses past the counts, reserves ``cap`` records."""
    def decide(transfers: int, records: int) -> Capped:
        if max_transfers is not None and transfers + 1 > max_transfers:
            raise PermissionDenied("too many transfers", code="policy_denied")
        if max_records is not None and records + 1 > max_records:
            raise PermissionDenied("too many records", code="policy_denied")
        return Capped(cap)
    return decide


def summed(conn: sqlite3.Connection, agreement: str, exclude: str = "") -> tuple[int, int]:
    row = conn.execute(_USAGE, (agreement, "provider", exclude)).fetchone()
    return int(row[0]), int(row[1])


async def check_sums(db: Database, ids: list[str]) -> None:
    def compare(conn: sqlite3.Connection) -> list[tuple]:
        wrong = []
        for agreement in AGREEMENTS:
            for exclude in ["", "no-such-transfer", *ids]:
                kept, full = _used(conn, agreement, exclude), summed(conn, agreement, exclude)
                if kept != full:
                    wrong.append((agreement, exclude, kept, full))
        return wrong
    assert await db.run(compare) == []


async def test_kept_sums_equal_the_full_count_through_random_changes(tmp_path):
    rng = random.Random(18)
    async with open_metering_db(tmp_path) as db:
        usage = UsageStore(db)
        ids: list[str] = []
        for step in range(300):
            action = rng.choice(["reserve", "reserve", "progress", "sent", "release", "ack",
                                 "resume", "orphans", "consumer"])
            tid = rng.choice(ids) if ids else ""
            try:
                if action == "reserve" or not ids:
                    tid = str(uuid.uuid4())
                    await usage.reserve(id=tid, agreement_id=rng.choice(AGREEMENTS), dataset_id="d",
                                        provider="p", consumer="c", version="v1", incremental=False,
                                        limits=limits(cap=rng.choice([None, 50, 500])))
                    ids.append(tid)
                elif action == "progress":
                    b = rng.randint(0, 6)
                    await usage.progress(tid, records=b * 40, bytes=b * 999, batches=b,
                                         status=rng.choice(["running", "interrupted", "failed"]))
                elif action == "sent":
                    b = rng.randint(0, 6)
                    await usage.progress(tid, records=b * 40, bytes=b * 999, batches=b, status="sent",
                                         chain="0" * 64)
                elif action == "release":
                    await usage.release(tid)
                elif action == "ack":
                    row = await usage.get(tid)
                    await usage.acknowledge(tid, row.batches)
                elif action == "resume":
                    row = await usage.get(tid)
                    await usage.resume(tid, agreement_id=row.agreement_id, consumer="c",
                                       after_seq=row.acked_seq, version="v1",
                                       limits=limits(cap=rng.choice([None, 70])))
                elif action == "orphans":
                    await usage.recover_orphans()
                else:
                    await usage.start(id=str(uuid.uuid4()), role="consumer",
                                      agreement_id=rng.choice(AGREEMENTS), dataset_id="d",
                                      provider="p", consumer="c", version="v1", incremental=False)
            except AreameshError:
                pass  # a refused resume (complete, running, ...): nothing changed
            if step % 10 == 0:
                await check_sums(db, ids[-5:])
        await db.run(lambda conn: conn.execute("DELETE FROM transfers WHERE rowid % 3 = 0"))
        await check_sums(db, ids[-5:])
        n, _ = await usage.used("a-1")
        assert n > 0


async def test_the_migration_sums_rows_written_before_it(tmp_path):
    async with Database(tmp_path / "metering.db", MIGRATIONS[:4]) as old:
        rows = [("t1", "a-1", "running", 0, 0, 30, 1), ("t2", "a-1", "complete", 100, 2, None, 1),
                ("t3", "a-1", "interrupted", 0, 0, None, 0), ("t4", "a-1", "interrupted", 0, 0, 9, 1),
                ("t5", "a-2", "failed", 12, 1, None, 1), ("t6", "a-1", "running", 80, 3, 40, 1)]
        await old.run(lambda conn: conn.executemany(
            "INSERT INTO transfers(id, role, agreement_id, dataset_id, provider, consumer, version, "
            "status, records, batches, reserved_records, counts_exact, started_at) "
            "VALUES (?, 'provider', ?, 'd', 'p', 'c', 'v', ?, ?, ?, ?, ?, 'now')", rows))
    async with open_metering_db(tmp_path) as db:
        assert await db.version() == len(MIGRATIONS)
        assert await UsageStore(db).used("a-1") == (4, 30 + 100 + 0 + 0 + 80)
        assert await UsageStore(db).used("a-1", exclude="t6") == (3, 130)
        await check_sums(db, ["t1", "t2", "t3", "t4", "t5", "t6"])


async def test_concurrent_reservations_sharing_commits_never_pass_a_limit(tmp_path):
    async with open_metering_db(tmp_path) as db:
        usage = UsageStore(db)
        commits: list[str] = []
        await db.run(lambda c: c.set_trace_callback(
            lambda sql: commits.append(sql) if sql.strip() == "COMMIT" else None))

        async def one(limit) -> bool:
            try:
                await usage.reserve(id=str(uuid.uuid4()), agreement_id="a-1", dataset_id="d",
                                    provider="p", consumer="c", version="v", incremental=False,
                                    limits=limit)
            except PermissionDenied:
                return False
            return True

        results = await asyncio.gather(*(one(limits(max_transfers=7)) for _ in range(40)))
        assert sum(results) == 7
        assert len(commits) < 40                       # they did share commits
        assert await usage.used("a-1") == (7, 0)
        # a record cap: each running transfer holds its reservation; 3 × 100 of 350 fit
        results = await asyncio.gather(*(one(limits(max_records=350, cap=100)) for _ in range(20)))
        assert sum(results) == 4                        # 0, 100, 200, 300 held before each
        n, r = await usage.used("a-1")
        assert (n, r) == (11, 400)


@pytest.mark.parametrize("role", ["provider", "consumer"])
async def test_a_consumers_rows_never_count_against_the_provider(tmp_path, role):
    async with open_metering_db(tmp_path) as db:
        usage = UsageStore(db)
        await usage.start(id="x", role=role, agreement_id="a-1", dataset_id="d", provider="p",
                          consumer="c", version="v", incremental=False)
        assert await usage.used("a-1") == ((1, 0) if role == "provider" else (0, 0))
