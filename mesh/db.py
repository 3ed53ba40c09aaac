"""SQLite through aiosqlite: one writer connection, WAL, numbered migrations.

Each component owns one database file. Migrations are a list of SQL scripts; script *n*
(1-based) brings the schema to ``PRAGMA user_version = n`` inside one transaction, so a crash
mid-migration leaves the previous version intact.

Hot paths have three more ways in (``read``, ``run`` and ``write``). Every aiosqlite call is a
trip to the connection's thread and back (a queue put, a thread wake-up, a call back into the
event loop): a transaction of three statements through the async API is six or more trips, and
on a busy machine each wake-up waits for a core. ``read`` does a short read by key right on the
event loop through a second, read-only connection, which takes tens of microseconds, less than
one trip. ``run`` sends a plain function that does all its statements on the ``sqlite3``
connection in one trip.
``write`` is group commit: writes that arrive while a commit is under way wait for the next one
and then share it, each in its own savepoint (one that raises is undone alone and its caller
gets the exception), one ``BEGIN IMMEDIATE`` … ``COMMIT`` and so one sync of the WAL for all of
them. Every caller is answered only after that commit: under ``synchronous=FULL`` a write is
durable when its ``await`` returns, exactly as through ``transaction()``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from mesh.errors import FailedPrecondition

log = logging.getLogger("areamesh.mesh.db")
T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]


def read_only_connection(path: Path, **options: Any) -> sqlite3.Connection:
    """A plain ``sqlite3`` connection to the database file at ``path`` that cannot write
    (``mode=ro``); ``options`` as for ``sqlite3.connect``. It sees every commit, whichever
    process made it, and takes a snapshot of its own inside a read transaction."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, **options)


class Database:
    """A single aiosqlite connection; writes are serialised by ``transaction()``.

    ``mesh.db_pg.PgDatabase`` has the same interface over PostgreSQL; code that must tell them
    apart reads ``dialect``."""

    dialect = "sqlite"

    def __init__(self, path: Path, migrations: Sequence[str], *, synchronous: str = "FULL") -> None:
        self.path = path
        self.migrations = migrations
        self.synchronous = synchronous
        self._conn: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._queued: list[tuple[Work[Any], asyncio.Future[Any]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._reader: sqlite3.Connection | None = None

    async def open(self) -> Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:  # a file that is not a database fails here: close the connection, keep the error
            conn.row_factory = aiosqlite.Row
            try:
                await conn.execute("PRAGMA busy_timeout=10000")
                await _into_wal(conn)
                await conn.execute(f"PRAGMA synchronous={self.synchronous}")
                await conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as exc:
                raise self._unusable(exc) from exc
            self._conn = conn
            await self._migrate()
        except BaseException:
            self._conn = None
            await conn.close()
            raise
        return self

    def _unusable(self, exc: sqlite3.Error) -> FailedPrecondition:
        return FailedPrecondition(f"{self.path} cannot be used as a database: {exc}",
                                  message_ja=f"{self.path} をデータベースとして開けません",
                                  code="database_unusable", details={"path": str(self.path)})

    async def close(self) -> None:
        if self._committer is not None:  # writes already queued are committed first
            await asyncio.shield(self._committer)
            self._committer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError(f"database {self.path} is not open")
        return self._conn

    async def version(self) -> int:
        row = await self.fetchone("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        current = await self.version()
        if current > len(self.migrations):
            raise FailedPrecondition(
                f"{self.path} has schema version {current}, newer than this program knows "
                f"({len(self.migrations)}); upgrade areamesh (a newer version wrote it)",
                message_ja=f"{self.path} のスキーマ（版 {current}）はこのプログラム（版 "
                           f"{len(self.migrations)}）より新しいため開けません。areamesh を更新してください",
                code="database_too_new", details={"path": str(self.path), "version": current})
        for number, script in enumerate(self.migrations[current:], start=current + 1):
            async with self.transaction() as conn:
                # Another process (a CLI call beside the server) may have migrated since the
                # version was read: re-read it under the write lock and skip what it did.
                async with conn.execute("PRAGMA user_version") as cur:
                    row = await cur.fetchone()
                if row is not None and int(row[0]) >= number:
                    continue
                for statement in _split_sql(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version={number}")
            log.info("migrated %s to schema version %d", self.path.name, number)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on error. The commit is shielded from
        cancellation so a cancelled caller never leaves half a transaction behind."""
        async with self._write_lock:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await asyncio.shield(self.conn.execute("ROLLBACK"))
                raise
            await asyncio.shield(self.conn.execute("COMMIT"))

    async def read(self, work: Work[T]) -> T:
        """``work(connection)`` on the calling thread (the event loop's), through this
        database's read-only connection, for reads by key or through a small index that take
        tens of microseconds; never for scans. It sees what is committed, not a transaction in
        progress. Should the file be locked for a moment (a WAL reset or recovery), the read is
        done in the connection's thread instead (``run``), never waited for here."""
        self.conn  # noqa: B018 (raises when the database is not open)
        try:
            if self._reader is None:
                reader = read_only_connection(self.path, timeout=0, isolation_level=None)
                reader.row_factory = sqlite3.Row
                self._reader = reader
            return work(self._reader)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return await self.run(work)
        except sqlite3.ProgrammingError:  # the reader belongs to another thread's loop: the
            return await self.run(work)   # writer's thread serves any (a real error recurs there)

    async def run(self, work: Work[T]) -> T:
        """``work(connection)`` in the connection's own thread, in one trip: reads of several
        statements, or statements inside ``transaction()``. ``work`` is plain synchronous code
        that touches nothing but the ``sqlite3`` connection it is given (rows are
        ``sqlite3.Row``). It must not begin or end a transaction; use ``write`` for that."""
        conn = self.conn
        # aiosqlite queues each of its own calls with ``_execute`` (a function and its
        # arguments, run in the connection's thread); this queues ours the same way
        return await conn._execute(work, conn._conn)

    async def write(self, work: Work[T]) -> T:
        """``work(connection)`` in a write transaction it may share with other writes (group
        commit, see the module docstring); returns its result once that transaction is
        committed, or raises what ``work`` raised, with its changes undone and the others'
        kept. ``work`` is as for ``run``. A caller cancelled before its write has begun leaves
        nothing behind; once begun, the write commits with the others, answered or not."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((work, future))
        if self._committer is None or self._committer.done():
            self._committer = asyncio.ensure_future(self._commit_queued())
        return await future

    async def _commit_queued(self) -> None:
        while self._queued:
            async with self._write_lock:
                batch = [(w, f) for w, f in self._queued if not f.done()]  # done: cancelled
                self._queued = []
                if not batch:
                    continue
                conn = self.conn
                try:
                    outcomes = await asyncio.shield(
                        conn._execute(_group_commit, conn._conn, [w for w, _ in batch]))
                except BaseException as exc:  # nothing of this batch was committed
                    failure = exc if isinstance(exc, Exception) else RuntimeError(
                        f"the write to {self.path} was interrupted")
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(failure)
                    if not isinstance(exc, Exception):
                        raise
                    continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if not future.done():
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())


def _group_commit(conn: sqlite3.Connection, works: list[Work[Any]]) -> list[tuple[bool, Any]]:
    """In the connection's thread: ``works`` in one transaction, each in a savepoint; returns
    (True, result) or (False, exception) for each, once committed. Raises (after rolling back)
    when the transaction as a whole fails, e.g. at COMMIT."""
    conn.execute("BEGIN IMMEDIATE")
    outcomes: list[tuple[bool, Any]] = []
    try:
        for work in works:
            conn.execute("SAVEPOINT grouped")
            try:
                result = work(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO grouped")
                conn.execute("RELEASE grouped")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE grouped")
                outcomes.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements. A trigger's body (``BEGIN …; END``) stays whole:
    pieces are joined until SQLite calls the statement complete. No ';' inside literals."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if statement := pending.strip().removesuffix(";").strip():
                statements.append(statement)
            pending = ""
    if pending.strip(" \n\t;"):
        statements.append(pending.strip().removesuffix(";").strip())
    return statements


WAL_SWITCH_WAIT = 10.0   # seconds a new file's switch to WAL may wait for other openers


async def _into_wal(conn: aiosqlite.Connection) -> None:
    """``PRAGMA journal_mode=WAL``, again while the file is locked: processes opening a new file
    at once each read it (a shared lock) and then want it alone to switch, and SQLite answers
    one of them "database is locked" at once instead of waiting (it would be a deadlock); that
    one tries again once the other has switched (a registry's replicas starting together)."""
    deadline = time.monotonic() + WAL_SWITCH_WAIT
    delay = 0.01
    while True:
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
