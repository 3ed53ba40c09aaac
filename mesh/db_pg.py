"""PostgreSQL through asyncpg, behind the interface of ``mesh.db.Database``.

The stores were written for aiosqlite: ``async with db.transaction() as conn``, then
``await conn.execute(sql, params)`` (or ``async with conn.execute(...) as cur``) with ``?``
placeholders, ``cur.fetchone()/fetchall()/rowcount``, rows read by name or index. ``PgDatabase``
gives them the same shapes over an asyncpg pool, so a store runs on either backend unchanged:

* ``?`` becomes ``$n`` (outside string literals and quoted names);
* ``INSERT OR IGNORE INTO …`` becomes ``INSERT INTO … ON CONFLICT DO NOTHING``;
* ``json_each(?) j`` (a JSON array parameter as rows) becomes ``json_array_elements_text``;
* ``numeric`` results (``SUM`` of integers) come back as ``int`` (``float`` when fractional),
  as SQLite returns them, not as ``Decimal``.

Anything else must be SQL both engines accept (or a per-backend branch on ``db.dialect``).

Writers are serialised like SQLite's ``BEGIN IMMEDIATE``: every ``transaction()`` first takes
``pg_advisory_xact_lock`` on a key derived from the schema, so across every process on the
database one write transaction runs at a time, and what it reads under the lock is what the
previous one committed (READ COMMITTED takes a new snapshot per statement). That is what keeps a
join token single-use and notarisation idempotent when two replicas receive the same call.

Each component lives in its own schema (``registry``, ``identity``) of one database. Its
migrations are the SQLite list, translated statement by statement (``translate_ddl``), and
numbered alike: ``schema_version(component, version)`` replaces ``PRAGMA user_version``; each
migration runs in one transaction under the writer lock and re-reads the version, so two
processes starting at once apply it once. ``extra`` migration lists (``(component, scripts)``)
let a module own PostgreSQL-only tables (the catalog search index) with their own numbering.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from mesh.errors import FailedPrecondition

log = logging.getLogger("areamesh.mesh.db")

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_postgres_url(value: str | None) -> bool:
    return bool(value) and value.split(":", 1)[0] in ("postgresql", "postgres")


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


# ---- SQL translation ----------------------------------------------------------------------

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?|[^'\"?]+", re.S)
_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO\b", re.I)
_OR_REPLACE = re.compile(r"^\s*INSERT\s+OR\s+REPLACE\b", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_JSON_EACH = re.compile(r"\bjson_each\(\s*\?\s*\)\s+(?:AS\s+)?(\w+)", re.I)
_READS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW|EXPLAIN)\b", re.I)


class UntranslatableSQL(ValueError):
    """A SQLite statement with no PostgreSQL translation: the calling code must be written
    otherwise (a refusal by design, raised before the statement reaches either database)."""


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """SQLite-flavoured ``sql`` as PostgreSQL (see the module docstring for what changes)."""
    if _OR_REPLACE.match(sql):
        raise UntranslatableSQL("INSERT OR REPLACE has no PostgreSQL equivalent without a "
                                "conflict target: write INSERT … ON CONFLICT(…) DO UPDATE")
    sql = _JSON_EACH.sub(lambda m: f"json_array_elements_text(?::json) AS {m[1]}(value)", sql)
    if _OR_IGNORE.match(sql):
        sql = _OR_IGNORE.sub("INSERT INTO", sql, count=1).rstrip().rstrip(";")
        returning = _RETURNING.search(sql)
        if returning:
            sql = (sql[:returning.start()] + "ON CONFLICT DO NOTHING "
                   + sql[returning.start():])
        else:
            sql += " ON CONFLICT DO NOTHING"
    out, n = [], 0
    for token in _TOKENS.findall(sql):
        if token == "?":
            n += 1
            out.append(f"${n}")
        else:
            out.append(token)
    return "".join(out)


_VIRTUAL = re.compile(r"^\s*CREATE\s+VIRTUAL\s+TABLE\b", re.I)
_TRIGGER = re.compile(
    r"^\s*CREATE\s+TRIGGER\s+(\w+)\s+BEFORE\s+(UPDATE|DELETE|INSERT)\s+ON\s+(\w+)\s+"
    r"BEGIN\s+SELECT\s+RAISE\s*\(\s*ABORT\s*,\s*'([^']*)'\s*\)\s*;?\s*END\s*$", re.I | re.S)
_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(\w+)", re.I)
_COLUMN_REFERENCES = re.compile(
    r"([(,]|^)(\s*)(\w+)(\s[^,(\n]*?)\s+REFERENCES\s+(\w+)\s*\((\w+)\)", re.I | re.M)
# type names as the migrations write them, upper case (a column may be called ``text``)
_DDL_TYPES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b"),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    # byte order, as SQLite's BINARY collation compares (and sorts ids and ISO times alike)
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\)\s*WITHOUT\s+ROWID\s*$", re.I), ")"),
]


def translate_ddl(script: str) -> list[str]:
    """One SQLite migration script as PostgreSQL statements.

    Column types: INTEGER → BIGINT (SQLite integers are 64-bit), ``INTEGER PRIMARY KEY
    AUTOINCREMENT`` → an identity column, REAL → DOUBLE PRECISION, BLOB → BYTEA, TEXT → TEXT
    with the "C" collation. ``WITHOUT ROWID`` is dropped. A ``BEFORE … BEGIN SELECT RAISE(ABORT,
    '…'); END`` trigger (append-only tables) becomes a plpgsql trigger raising the same message.
    ``CREATE VIRTUAL TABLE`` (FTS5) is skipped: full-text search has its own PostgreSQL module.
    """
    from mesh.db import _split_sql

    out: list[str] = []
    foreign_keys: list[str] = []   # added last: SQLite lets a table reference a later one
    for statement in _split_sql(script):
        if _VIRTUAL.match(statement):
            continue
        trigger = _TRIGGER.match(statement)
        if trigger:
            name, event, table, message = trigger.groups()
            out.append(f"CREATE FUNCTION {name}_fn() RETURNS trigger LANGUAGE plpgsql AS "
                       f"$fn$BEGIN RAISE EXCEPTION '{message}'; END$fn$")
            out.append(f"CREATE TRIGGER {name} BEFORE {event.upper()} ON {table} "
                       f"FOR EACH ROW EXECUTE FUNCTION {name}_fn()")
            continue
        if re.match(r"^\s*(CREATE|ALTER)\s+TABLE\b", statement, re.I):
            for pattern, replacement in _DDL_TYPES:
                statement = pattern.sub(replacement, statement)
        created = _CREATE_TABLE.match(statement)
        if created:
            def later(m: re.Match[str], table: str = created[1]) -> str:
                foreign_keys.append(f"ALTER TABLE {table} ADD FOREIGN KEY ({m[3]}) "
                                    f"REFERENCES {m[5]}({m[6]})")
                return m[1] + m[2] + m[3] + m[4]
            statement = _COLUMN_REFERENCES.sub(later, statement)
        out.append(statement)
    return out + foreign_keys


# ---- cursor and connection shapes ---------------------------------------------------------

def _rowcount(status: str) -> int:
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class PgCursor:
    """The rows of one statement, read like an aiosqlite cursor."""

    lastrowid = None   # no rowid in PostgreSQL: use RETURNING

    def __init__(self, rows: list[asyncpg.Record], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    async def fetchone(self) -> asyncpg.Record | None:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    async def fetchall(self) -> list[asyncpg.Record]:
        rows, self._next = self._rows[self._next:], len(self._rows)
        return rows

    async def fetchmany(self, size: int = 1) -> list[asyncpg.Record]:
        rows = self._rows[self._next:self._next + size]
        self._next += len(rows)
        return rows

    def __aiter__(self) -> PgCursor:
        return self

    async def __anext__(self) -> asyncpg.Record:
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def close(self) -> None:
        pass


class _Pending:
    """What ``execute`` returns: awaitable (→ cursor) and an async context manager (→ cursor),
    like aiosqlite's."""

    def __init__(self, run: Awaitable[PgCursor]) -> None:
        self._run = run

    def __await__(self):
        return self._run.__await__()

    async def __aenter__(self) -> PgCursor:
        return await self._run

    async def __aexit__(self, *exc: object) -> None:
        pass


async def _run(raw: asyncpg.Connection, sql: str, params: Iterable[Any]) -> PgCursor:
    query, args = translate(sql), tuple(params)
    if _READS.match(query) or _RETURNING.search(query):
        rows = await raw.fetch(query, *args)
        return PgCursor(rows, len(rows))
    return PgCursor([], _rowcount(await raw.execute(query, *args)))


class PgConnection:
    """One pooled connection inside a transaction, with aiosqlite's ``execute`` shapes."""

    dialect = "postgresql"

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Iterable[Any] = ()) -> _Pending:
        return _Pending(_run(self.raw, sql, params))

    async def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> None:
        await self.raw.executemany(translate(sql), [tuple(p) for p in seq])

    async def execute_fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[asyncpg.Record]:
        return await (await _run(self.raw, sql, params)).fetchall()


class _PoolConnection:
    """``db.conn`` outside a transaction: each statement on a connection from the pool, in
    autocommit (as aiosqlite's connection with ``isolation_level=None``)."""

    dialect = "postgresql"

    def __init__(self, db: PgDatabase) -> None:
        self.db = db

    async def _run(self, sql: str, params: Iterable[Any]) -> PgCursor:
        async with self.db.pool.acquire() as raw:
            return await _run(raw, sql, params)

    def execute(self, sql: str, params: Iterable[Any] = ()) -> _Pending:
        return _Pending(self._run(sql, params))

    async def executemany(self, sql: str, seq: Iterable[Iterable[Any]]) -> None:
        async with self.db.pool.acquire() as raw:
            await raw.executemany(translate(sql), [tuple(p) for p in seq])

    async def execute_fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[asyncpg.Record]:
        return await (await self._run(sql, params)).fetchall()


def _numeric(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


async def _init_connection(raw: asyncpg.Connection) -> None:
    # SUM(bigint) is numeric in PostgreSQL; the stores expect SQLite's int (or float)
    await raw.set_type_codec("numeric", encoder=str, decoder=_numeric, schema="pg_catalog",
                             format="text")


async def _finish(aw: Awaitable[Any]) -> None:
    """Run ``aw`` to its end even if the caller is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


# ---- the database -------------------------------------------------------------------------

class PgDatabase:
    """A pool of connections to one schema; writes serialised by ``transaction()``."""

    dialect = "postgresql"

    def __init__(self, url: str, migrations: Sequence[str], *, schema: str,
                 extra: Sequence[tuple[str, Sequence[str]]] = (),
                 replace: Mapping[int, Sequence[str]] | None = None, min_size: int = 1,
                 max_size: int = 10) -> None:
        """``replace``: migration number → the PostgreSQL statements to run instead of its
        translation (``[]``: none; the number still counts)."""
        if not SCHEMA_NAME.match(schema):
            raise ValueError(f"bad schema name {schema!r}")
        self.url = url
        self.migrations = migrations
        self.schema = schema
        self.extra = extra
        self.replace = dict(replace or {})
        self.path = f"{redact(url)} (schema {schema})"   # what messages name, as Database.path
        self.lock_key = int.from_bytes(
            hashlib.sha256(f"areamesh:{schema}".encode()).digest()[:8], "big", signed=True)
        self._min, self._max = min_size, max_size
        self._pool: asyncpg.Pool | None = None
        self._write_lock = asyncio.Lock()   # one waiter per process on the advisory lock

    async def open(self) -> PgDatabase:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=self._min, max_size=self._max, init=_init_connection,
                server_settings={"search_path": f"{self.schema}, public",
                                 "application_name": f"areamesh-{self.schema}"})
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
            raise FailedPrecondition(
                f"cannot connect to PostgreSQL at {redact(self.url)}: {exc}",
                message_ja=f"PostgreSQL（{redact(self.url)}）に接続できません",
                code="database_unusable", details={"database": redact(self.url)}) from exc
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def __aenter__(self) -> PgDatabase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError(f"database {self.path} is not open")
        return self._pool

    @property
    def conn(self) -> _PoolConnection:
        return _PoolConnection(self)

    async def version(self, component: str | None = None) -> int:
        row = await self.fetchone(
            "SELECT version FROM schema_version WHERE component = ?", (component or self.schema,))
        return int(row[0]) if row else 0

    async def _migrate(self) -> None:
        async with self.transaction() as conn:    # under the lock: two processes, one creator
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (component TEXT "
                               "PRIMARY KEY, version BIGINT NOT NULL)")
        lists = [(self.schema, [list(self.replace[n]) if n in self.replace else translate_ddl(m)
                                for n, m in enumerate(self.migrations, start=1)])]
        # a module's own PostgreSQL scripts run whole (the simple protocol takes several
        # statements, and plpgsql bodies keep their semicolons)
        lists += [(name, [[script] for script in scripts]) for name, scripts in self.extra]
        for component, scripts in lists:
            current = await self.version(component)
            if current > len(scripts):
                raise FailedPrecondition(
                    f"{self.path} has {component} schema version {current}, newer than this "
                    f"program knows ({len(scripts)}); upgrade areamesh (a newer version wrote it)",
                    message_ja=f"{self.path} のスキーマ（版 {current}）はこのプログラム（版 "
                               f"{len(scripts)}）より新しいため開けません。areamesh を更新してください",
                    code="database_too_new", details={"version": current})
            for number, statements in enumerate(scripts[current:], start=current + 1):
                async with self.transaction() as conn:
                    # another process may have applied it since the version was read
                    row = await (await conn.execute(
                        "SELECT version FROM schema_version WHERE component = ?",
                        (component,))).fetchone()
                    if row is not None and int(row[0]) >= number:
                        continue
                    for statement in statements:
                        await conn.raw.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_version(component, version) VALUES (?, ?) ON "
                        "CONFLICT(component) DO UPDATE SET version = excluded.version",
                        (component, number))
                log.info("migrated %s to %s schema version %d", redact(self.url), component,
                         number)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgConnection]:
        """``BEGIN`` + the schema's advisory lock … ``COMMIT``; rolls back on error. The
        commit is finished even if the caller is cancelled meanwhile."""
        async with self._write_lock, self.pool.acquire() as raw:
            tx = raw.transaction()
            await tx.start()
            try:
                await raw.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
                yield PgConnection(raw)
            except BaseException:
                await _finish(tx.rollback())
                raise
            await _finish(tx.commit())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> asyncpg.Record | None:
        async with self.pool.acquire() as raw:
            return await (await _run(raw, sql, params)).fetchone()

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[asyncpg.Record]:
        async with self.pool.acquire() as raw:
            return await (await _run(raw, sql, params)).fetchall()

