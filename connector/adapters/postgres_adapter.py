"""PostgreSQL via asyncpg: a server-side-cursor query source and a one-transaction table sink.

Source config: ``dsn``, ``query`` (required), ``fingerprint_query`` (optional, e.g.
``SELECT max(updated_at), count(*) FROM t``; without it the fingerprint is an order-independent
md5 of the whole result computed in the server), ``connect_timeout`` (seconds, default 10).
Column types come from the prepared statement: no inference. ``numeric`` becomes text (exact).

Sink config: ``dsn``, ``table`` (``name`` or ``schema.name``), ``mode``: ``replace`` (default)
or ``append``. The table is created from the Arrow schema if missing; rows are loaded with COPY
inside one transaction that ``commit()`` commits and ``abort()`` rolls back.

Connection failures raise :class:`mesh.errors.Unavailable` naming host and port (never the
password); SQL errors raise :class:`SourceError`/:class:`SinkError`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import asyncpg
import pyarrow as pa

from connector.adapters._config import check_batch_rows, get_choice, get_float, get_str
from connector.adapters._rows import rows_to_batch
from connector.adapters.base import DEFAULT_BATCH_ROWS, SinkError, SourceError, SourceUnavailable
from mesh.errors import FailedPrecondition

KIND = "postgresql"
PG_TO_ARROW = {
    "bool": pa.bool_(), "int2": pa.int16(), "int4": pa.int32(), "int8": pa.int64(),
    "float4": pa.float32(), "float8": pa.float64(), "date": pa.date32(),
    "timestamp": pa.timestamp("us"), "timestamptz": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"), "bytea": pa.binary(), "oid": pa.int64(),
}
CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
                  asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)


def where(dsn: str) -> str:
    """``host:port/database`` of a DSN for messages, without user or password."""
    try:
        parts = urlsplit(dsn)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"
    except ValueError:
        return "the configured dsn"


async def connect(dsn: str, timeout: float) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=timeout)
    except CONNECT_ERRORS as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
        raise SourceUnavailable(f"cannot connect to PostgreSQL at {where(dsn)}: {reason}",
                                message_ja=f"PostgreSQL ({where(dsn)}) に接続できません",
                                details={"server": where(dsn)}) from None


def pg_to_arrow(type_name: str) -> pa.DataType:
    return PG_TO_ARROW.get(type_name, pa.string())


class PostgresSource:
    """Streams ``query`` through a server-side cursor in a read-only transaction."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.dsn = get_str(config, "dsn", KIND)
        self.query = get_str(config, "query", KIND)
        self.fingerprint_query = get_str(config, "fingerprint_query", KIND, None)
        self.timeout = get_float(config, "connect_timeout", KIND, 10.0)
        self._schema: pa.Schema | None = None

    def _query_error(self, exc: asyncpg.PostgresError) -> SourceError:
        return SourceError(f"postgresql adapter: query failed on {where(self.dsn)}: {exc}",
                           message_ja=f"PostgreSQL の問い合わせに失敗しました: {exc}",
                           details={"sqlstate": getattr(exc, "sqlstate", None)})

    async def schema(self) -> pa.Schema:
        if self._schema is None:
            conn = await connect(self.dsn, self.timeout)
            try:
                stmt = await conn.prepare(self.query)
                attrs = stmt.get_attributes()
            except asyncpg.PostgresError as exc:
                raise self._query_error(exc) from None
            finally:
                await conn.close()
            self._schema = pa.schema([pa.field(a.name, pg_to_arrow(a.type.name)) for a in attrs])
        return self._schema

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        check_batch_rows(batch_rows)
        schema = await self.schema()
        conn = await connect(self.dsn, self.timeout)
        try:
            async with conn.transaction(readonly=True, isolation="repeatable_read"):
                try:
                    cursor = await conn.cursor(self.query)
                except asyncpg.PostgresError as exc:
                    raise self._query_error(exc) from None
                row_no = 0
                while records := await cursor.fetch(batch_rows):
                    numbers = list(range(row_no + 1, row_no + len(records) + 1))
                    row_no += len(records)
                    yield rows_to_batch([dict(r.items()) for r in records], schema, numbers=numbers,
                                        unit="row")
        finally:
            await conn.close()

    async def fingerprint(self) -> str:
        sql = self.fingerprint_query or (
            f"SELECT count(*), md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))) "
            f"FROM ({self.query}) AS t")
        conn = await connect(self.dsn, self.timeout)
        try:
            rows = await conn.fetch(sql)
        except asyncpg.PostgresError as exc:
            raise self._query_error(exc) from None
        finally:
            await conn.close()
        text = json.dumps([list(r.values()) for r in rows], default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    async def close(self) -> None:
        self._schema = None


def arrow_to_pg(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_float32(t) or pa.types.is_float16(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytea"
    return "text"


def _pg_value(value: Any, pg_type: str) -> Any:
    if value is None:
        return None
    if pg_type == "text" and not isinstance(value, str):
        if isinstance(value, dict | list):
            return json.dumps(value, ensure_ascii=False, default=str)
        return value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)
    if pg_type == "numeric" and not isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(value))
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def quote_table(table: str) -> tuple[str | None, str]:
    schema, _, name = table.rpartition(".")
    return (schema or None), name


class PostgresSink:
    """COPYs batches into ``table`` in one transaction, visible only after ``commit()``."""

    def __init__(self, config: dict[str, Any], *, base_dir: Path) -> None:
        self.dsn = get_str(config, "dsn", KIND)
        self.table = get_str(config, "table", KIND)
        self.mode = get_choice(config, "mode", KIND, ("replace", "append"), "replace")
        self.timeout = get_float(config, "connect_timeout", KIND, 10.0)
        self.schema_name, self.table_name = quote_table(self.table)
        self._conn: asyncpg.Connection | None = None
        self._tx: Any = None
        self._done = False

    def _ident(self) -> str:
        def q(name: str) -> str:
            return '"' + name.replace('"', '""') + '"'
        return f"{q(self.schema_name)}.{q(self.table_name)}" if self.schema_name else q(self.table_name)

    async def _begin(self, schema: pa.Schema) -> None:
        conn = await connect(self.dsn, self.timeout)
        tx = conn.transaction()
        try:
            await tx.start()
            columns = ", ".join('"' + f.name.replace('"', '""') + '" ' + arrow_to_pg(f.type) for f in schema)
            await conn.execute(f"CREATE TABLE IF NOT EXISTS {self._ident()} ({columns})")
            if self.mode == "replace":
                await conn.execute(f"DELETE FROM {self._ident()}")
        except BaseException:
            await conn.close()
            raise
        self._conn, self._tx = conn, tx

    async def write(self, batch: pa.RecordBatch) -> None:
        if self._done:
            raise FailedPrecondition(f"postgresql sink {self.table}: already committed or aborted")
        try:
            if self._conn is None:
                await self._begin(batch.schema)
            pg_types = [arrow_to_pg(f.type) for f in batch.schema]
            records = [tuple(_pg_value(v, t) for v, t in zip(row.values(), pg_types, strict=True))
                       for row in batch.to_pylist()]
            await self._conn.copy_records_to_table(self.table_name, records=records,
                                                   columns=batch.schema.names,
                                                   schema_name=self.schema_name)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, TypeError) as exc:
            await self.abort()
            raise SinkError(f"postgresql sink {self.table} on {where(self.dsn)}: {exc}",
                            message_ja=f"PostgreSQL への書き込みに失敗しました: {exc}") from None

    async def _finish(self, commit: bool) -> None:
        conn, tx = self._conn, self._tx
        self._conn, self._tx, self._done = None, None, True
        if conn is None:
            return
        try:
            await (tx.commit() if commit else tx.rollback())
        finally:
            await conn.close()

    async def commit(self) -> None:
        if self._done:
            raise FailedPrecondition(f"postgresql sink {self.table}: already committed or aborted")
        await self._finish(True)

    async def abort(self) -> None:
        await asyncio.shield(self._finish(False))


class PostgresAdapter:
    kind: ClassVar[str] = KIND

    @classmethod
    def source(cls, config: dict[str, Any], *, base_dir: Path) -> PostgresSource:
        return PostgresSource(config, base_dir=base_dir)

    @classmethod
    def sink(cls, config: dict[str, Any], *, base_dir: Path) -> PostgresSink:
        return PostgresSink(config, base_dir=base_dir)
