"""SQLite: a read-only query source and a one-transaction table sink.

Source config: ``path``, ``query`` (required), ``types`` ({column: arrow type}), ``infer_rows``
(rows sampled to infer column types, default 1000; SQLite columns have no fixed type).
The database is opened read-only (``mode=ro``); the fingerprint is the mtime and size of the
database file and its ``-wal`` file.

Sink config: ``path``, ``table`` (required), ``mode``: ``replace`` (default: the table holds
exactly the committed data) or ``append``. The table is created from the Arrow schema if
missing; all rows go in one transaction that ``commit()`` commits and ``abort()`` rolls back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import pyarrow as pa

from connector.adapters._config import check_batch_rows, get_choice, get_int, get_path, get_str, get_types
from connector.adapters._files import file_fingerprint
from connector.adapters._rows import infer_schema, rows_to_batch
from connector.adapters.base import DEFAULT_BATCH_ROWS, SinkError, SourceError
from mesh.errors import FailedPrecondition

KIND = "sqlite"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteSource:
    """Runs ``query`` on a read-only connection and yields its rows in batches."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.path = get_path(config, "path", KIND, base_dir)
        self.query = get_str(config, "query", KIND)
        self.types = get_types(config, KIND)
        self.infer_rows = get_int(config, "infer_rows", KIND, 1000, minimum=1)
        self._schema: pa.Schema | None = None

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise SourceError(f"sqlite adapter: database not found: {self.path}",
                              message_ja=f"SQLite データベースがありません: {self.path}")
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def _execute(self, conn: sqlite3.Connection) -> sqlite3.Cursor:
        try:
            return conn.execute(self.query)
        except sqlite3.Error as exc:
            raise SourceError(f"sqlite adapter: query failed on {self.path.name}: {exc}",
                              message_ja=f"SQLite の問い合わせに失敗しました: {exc}") from None

    def _infer(self) -> pa.Schema:
        conn = self._connect()
        try:
            cursor = self._execute(conn)
            names = [d[0] for d in cursor.description or ()]
            sample = [dict(zip(names, r, strict=True)) for r in cursor.fetchmany(self.infer_rows)]
        finally:
            conn.close()
        return infer_schema(sample, types=self.types, columns=names)

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            self._schema = await asyncio.to_thread(self._infer)
        return self._schema

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        conn = await asyncio.to_thread(self._connect)
        try:
            cursor = await asyncio.to_thread(self._execute, conn)
            names = [d[0] for d in cursor.description or ()]
            row_no = 0
            while rows := await asyncio.to_thread(cursor.fetchmany, batch_rows):
                numbers = list(range(row_no + 1, row_no + len(rows) + 1))
                row_no += len(rows)
                yield rows_to_batch([dict(zip(names, r, strict=True)) for r in rows], schema,
                                    numbers=numbers, unit="row")
        finally:
            await asyncio.to_thread(conn.close)

    async def fingerprint(self) -> str:
        return file_fingerprint(self.path, KIND, self.path.with_name(self.path.name + "-wal"))

    async def close(self) -> None:
        self._schema = None


def sql_type(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "INTEGER"
    if pa.types.is_floating(t):
        return "REAL"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "BLOB"
    return "TEXT"


def sql_value(value: Any) -> Any:
    """A Python value SQLite stores: dates as ISO text, nested values as JSON text."""
    if value is None or isinstance(value, int | float | str | bytes):
        return value
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


class SqliteSink:
    """Inserts batches into ``table`` inside one transaction, visible only after ``commit()``."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.path = get_path(config, "path", KIND, base_dir)
        self.table = get_str(config, "table", KIND)
        self.mode = get_choice(config, "mode", KIND, ("replace", "append"), "replace")
        self._conn: sqlite3.Connection | None = None
        self._done = False

    def _begin(self, schema: pa.Schema) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("BEGIN IMMEDIATE")
            columns = ", ".join(f"{quote_ident(f.name)} {sql_type(f.type)}" for f in schema)
            conn.execute(f"CREATE TABLE IF NOT EXISTS {quote_ident(self.table)} ({columns})")
            if self.mode == "replace":
                conn.execute(f"DELETE FROM {quote_ident(self.table)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _write(self, batch: pa.RecordBatch) -> None:
        if self._done:
            raise FailedPrecondition(f"sqlite sink {self.table}: already committed or aborted")
        if self._conn is None:
            self._conn = self._begin(batch.schema)
        names = ", ".join(quote_ident(n) for n in batch.schema.names)
        marks = ", ".join("?" * batch.num_columns)
        rows = ([sql_value(v) for v in row.values()] for row in batch.to_pylist())
        self._conn.executemany(f"INSERT INTO {quote_ident(self.table)} ({names}) VALUES ({marks})", rows)

    async def write(self, batch: pa.RecordBatch) -> None:
        try:
            await asyncio.to_thread(self._write, batch)
        except sqlite3.Error as exc:
            raise SinkError(f"sqlite sink {self.path.name}/{self.table}: {exc}",
                            message_ja=f"SQLite への書き込みに失敗しました: {exc}") from None

    def _finish(self, sql: str) -> None:
        conn, self._conn, self._done = self._conn, None, True
        if conn is not None:
            try:
                conn.execute(sql)
            finally:
                conn.close()

    async def commit(self) -> None:
        if self._done:
            raise FailedPrecondition(f"sqlite sink {self.table}: already committed or aborted")
        await asyncio.to_thread(self._finish, "COMMIT")

    async def abort(self) -> None:
        await asyncio.to_thread(self._finish, "ROLLBACK")


class SqliteAdapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> SqliteSource:
        return SqliteSource(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> SqliteSink:
        return SqliteSink(config, base_dir=base_dir)
