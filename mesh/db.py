"""SQLite through aiosqlite: one writer connection, WAL, numbered migrations.

Each component owns one database file. Migrations are a list of SQL scripts; script *n*
(1-based) brings the schema to ``PRAGMA user_version = n`` inside one transaction, so a crash
mid-migration leaves the previous version intact.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from mesh.errors import FailedPrecondition

log = logging.getLogger("areamesh.mesh.db")


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

    async def open(self) -> Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from exc
        try:  # a file that is not a database fails here: close the connection, keep the error
            conn.row_factory = aiosqlite.Row
            try:
                await conn.execute("PRAGMA journal_mode=WAL")
                await conn.execute(f"PRAGMA synchronous={self.synchronous}")
                await conn.execute("PRAGMA foreign_keys=ON")
                await conn.execute("PRAGMA busy_timeout=10000")
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

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, tuple(params)) as cur:
            return await cur.fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())


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
