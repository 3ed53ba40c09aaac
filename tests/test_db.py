"""mesh.db.Database: migrations are atomic, and a failed open leaves no connection behind."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import threading

import aiosqlite
import pytest

from mesh.db import Database
from mesh.errors import FailedPrecondition


def open_connections() -> int:
    """aiosqlite connection threads alive in this process (each lives until its connection closes)."""
    worker = aiosqlite.core._connection_worker_thread
    return sum(getattr(t, "_target", None) is worker for t in threading.enumerate())


async def settled_connections(at_most: int) -> int:
    """``open_connections()`` once closed connections' threads had a moment to end (a leaked
    connection's thread never ends)."""
    for _ in range(50):
        if (n := open_connections()) <= at_most:
            return n
        await asyncio.sleep(0.02)
    return open_connections()

V1 = "CREATE TABLE a (x INTEGER)"
V2 = "CREATE TABLE b (y INTEGER); INSERT INTO b VALUES (1)"


async def test_migrations_run_in_order_and_once(tmp_path):
    async with Database(tmp_path / "t.db", [V1]) as db:
        assert await db.version() == 1
    async with Database(tmp_path / "t.db", [V1, V2]) as db:
        assert await db.version() == 2
        assert (await db.fetchone("SELECT y FROM b"))[0] == 1
        assert (await db.fetchone("PRAGMA journal_mode"))[0] == "wal"


async def test_a_failing_migration_keeps_the_previous_version(tmp_path):
    async with Database(tmp_path / "t.db", [V1]):
        pass
    broken = Database(tmp_path / "t.db", [V1, "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (1)"])
    with pytest.raises(sqlite3.OperationalError):
        await broken.open()
    async with Database(tmp_path / "t.db", [V1]) as db:
        assert await db.version() == 1
        assert await db.fetchone("SELECT name FROM sqlite_master WHERE name = 'c'") is None


async def test_a_file_that_is_not_a_database_fails_without_leaking_its_connection(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite " * 100)
    before = open_connections()
    for _ in range(3):
        db = Database(path, [V1])
        with pytest.raises(FailedPrecondition, match="cannot be used as a database") as exc:
            await db.open()
        assert exc.value.code == "database_unusable" and str(path) in exc.value.message
        with pytest.raises(RuntimeError, match="not open"):
            db.conn  # noqa: B018
    assert await settled_connections(before) <= before


async def test_a_newer_schema_is_refused_and_closed(tmp_path):
    async with Database(tmp_path / "t.db", [V1, V2]):
        pass
    before = open_connections()
    with pytest.raises(FailedPrecondition, match="newer than this program knows") as exc:
        await Database(tmp_path / "t.db", [V1]).open()
    assert exc.value.code == "database_too_new"
    assert await settled_connections(before) <= before


class _StaleVersion(Database):
    """Reads the schema version as it was before another process migrated the file."""

    async def version(self) -> int:
        return 0


async def test_a_migration_another_process_finished_meanwhile_is_skipped(tmp_path):
    # A CLI call (operator add) opening the console database while the server migrates it:
    # both read version 0; the second must not run CREATE TABLE again.
    async with Database(tmp_path / "t.db", [V1, V2]):
        pass
    async with _StaleVersion(tmp_path / "t.db", [V1, V2]) as db:
        assert (await db.fetchone("PRAGMA user_version"))[0] == 2
        assert (await db.fetchone("SELECT count(*) FROM b"))[0] == 1


async def test_several_processes_opening_a_new_file_at_once_all_succeed(tmp_path):
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from mesh.db import Database\n"
        f"async def go():\n    async with Database(Path(sys.argv[1]), {[V1, V2]!r}):\n        pass\n"
        "asyncio.run(go())\n"
    )
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(tmp_path / "t.db"),
                                                  stderr=asyncio.subprocess.PIPE) for _ in range(4)]
    results = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err.decode()[-400:] for _, err in results]
    async with Database(tmp_path / "t.db", [V1, V2]) as db:
        assert (await db.fetchone("SELECT count(*) FROM b"))[0] == 1


async def test_openers_racing_to_switch_a_new_file_to_wal_all_succeed(tmp_path):
    """Openers of one new file at once each read it (a shared lock) and then want it alone to
    switch it to WAL; SQLite answers one of them "database is locked" at once, without the busy
    wait (it would be a deadlock). That one tries again: before, 8 of 40 rounds of three
    openers failed (the registry backends' test of three replicas opening at once, in CI)."""
    for round_no in range(20):
        path = tmp_path / f"r{round_no}.db"
        opened = await asyncio.gather(*(Database(path, [V1, V2]).open() for _ in range(4)),
                                      return_exceptions=True)
        errors = [o for o in opened if isinstance(o, BaseException)]
        for db in opened:
            if isinstance(db, Database):
                await db.close()
        assert not errors, (round_no, errors)


# ---- group commit (Database.write) and one-trip work (Database.run) ---------------------------

T1 = "CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)"


def _insert(k: int, v: str = "x"):
    def work(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t(k, v) VALUES (?, ?)", (k, v))
        return k
    return work


async def _commits(db: Database) -> list[str]:
    """Statements the connection runs from now on that end a transaction."""
    seen: list[str] = []
    await db.run(lambda c: c.set_trace_callback(
        lambda sql: seen.append(sql) if sql.strip().upper() in ("COMMIT", "ROLLBACK") else None))
    return seen


async def test_concurrent_writes_share_commits_and_each_is_answered_once_durable(tmp_path):
    async with Database(tmp_path / "t.db", [T1]) as db:
        commits = await _commits(db)
        other = sqlite3.connect(tmp_path / "t.db")  # a second connection sees only what is committed

        async def write_and_look(k: int) -> tuple[int, bool]:
            got = await db.write(_insert(k))
            seen = other.execute("SELECT 1 FROM t WHERE k = ?", (k,)).fetchone() is not None
            return got, seen

        results = await asyncio.gather(*(write_and_look(k) for k in range(200)))
        other.close()
        assert results == [(k, True) for k in range(200)]  # committed when answered
        assert commits and set(commits) == {"COMMIT"}
        assert len(commits) < 100, f"{len(commits)} commits for 200 concurrent writes"
        assert (await db.fetchone("SELECT count(*) FROM t"))[0] == 200


async def test_a_write_that_fails_is_undone_alone_and_its_caller_gets_the_error(tmp_path):
    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t(k, v) VALUES (1000, 'half')")
        raise ValueError("refused after writing")

    async with Database(tmp_path / "t.db", [T1]) as db:
        commits = await _commits(db)
        results = await asyncio.gather(db.write(_insert(1)), db.write(half_then_fail),
                                       db.write(_insert(1)),  # a duplicate key: IntegrityError
                                       db.write(_insert(2)), return_exceptions=True)
        assert results[0] == 1 and results[3] == 2
        assert isinstance(results[1], ValueError) and "refused" in str(results[1])
        assert isinstance(results[2], sqlite3.IntegrityError)
        rows = await db.fetchall("SELECT k, v FROM t ORDER BY k")
        assert [tuple(r) for r in rows] == [(1, "x"), (2, "x")]
        assert "ROLLBACK" not in commits


async def test_a_write_cancelled_before_it_began_leaves_nothing(tmp_path):
    async with Database(tmp_path / "t.db", [T1]) as db:
        async with db.transaction():  # holds the write lock: the writes below only queue
            first = asyncio.ensure_future(db.write(_insert(1)))
            second = asyncio.ensure_future(db.write(_insert(2)))
            await asyncio.sleep(0)
            second.cancel()
        assert await first == 1
        with pytest.raises(asyncio.CancelledError):
            await second
        assert [r[0] for r in await db.fetchall("SELECT k FROM t")] == [1]


async def test_close_commits_the_writes_already_queued(tmp_path):
    db = await Database(tmp_path / "t.db", [T1]).open()
    pending = [asyncio.ensure_future(db.write(_insert(k))) for k in range(20)]
    await asyncio.sleep(0)
    await db.close()
    assert [await p for p in pending] == list(range(20))
    con = sqlite3.connect(tmp_path / "t.db")
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 20
    con.close()


async def test_run_does_several_statements_in_one_trip(tmp_path):
    async with Database(tmp_path / "t.db", [T1]) as db:
        await db.write(_insert(7, "seven"))
        row = await db.run(lambda c: (c.execute("SELECT v FROM t WHERE k = 7").fetchone(),
                                      c.execute("SELECT count(*) FROM t").fetchone()[0]))
        assert row[0]["v"] == "seven" and row[1] == 1


_KILLED_WRITER = """
import asyncio, sqlite3, sys
from pathlib import Path
from mesh.db import Database

async def go():
    db = await Database(Path(sys.argv[1]), [{schema!r}]).open()
    async def one(k):
        def work(conn):
            conn.execute("INSERT INTO t(k, v) VALUES (?, 'x')", (k,))
        await db.write(work)
        sys.stdout.write(f"{{k}}\\n")   # acknowledged: the write is durable
        sys.stdout.flush()
    k = 0
    while True:
        await asyncio.gather(*(one(k + i) for i in range(16)))
        k += 16

asyncio.run(go())
"""


async def test_every_acknowledged_write_survives_sigkill(tmp_path):
    import signal
    path = tmp_path / "t.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLED_WRITER.format(schema=T1), str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    acked: list[int] = []
    while len(acked) < 300:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, (await proc.stderr.read()).decode()[-2000:]
        acked.append(int(line))
    proc.send_signal(signal.SIGKILL)  # in the middle of writing: some writes unanswered
    rest, _ = await proc.communicate()
    acked += [int(x) for x in rest.split()]
    con = sqlite3.connect(path)
    stored = {k for (k,) in con.execute("SELECT k FROM t")}
    con.close()
    assert set(acked) <= stored, sorted(set(acked) - stored)[:10]


async def test_read_sees_committed_rows_only_and_works_from_another_threads_loop(tmp_path):
    async with Database(tmp_path / "t.db", [T1]) as db:
        await db.write(_insert(1, "one"))
        assert (await db.read(lambda c: c.execute("SELECT v FROM t WHERE k = 1").fetchone()))[0] == "one"
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO t(k, v) VALUES (2, 'two')")
            # not yet committed: the read-only connection does not see it
            assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 1
        assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 2
        # the same Database used from an event loop in another thread still answers
        result = await asyncio.to_thread(asyncio.run, db.read(
            lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]))
        assert result == 2
