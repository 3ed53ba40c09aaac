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
