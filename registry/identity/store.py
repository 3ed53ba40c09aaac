"""IdentityStore: the identity service's own database, ``DATA_DIR/identity/identity.db``.

Kept apart from ``registry.db`` because it holds personal data (which platform ids belong to
one resident) under a different retention and access regime. Tables:

- ``identity_providers``: participants whose node may sign identity assertions, the platform
  they speak for and the highest 身元確認/当人認証 levels they may assert;
- ``persons`` and ``linked_ids``: (platform, local id) → person, with the levels on record
  (``ial``/``aal``), the levels the platform itself asserted, and which platform's provider
  vouched when the 身元確認レベル was raised (``elevated_from``);
- ``seen_assertions``: assertion ids already used (replay protection), pruned after expiry;
- ``pseudonyms``: pairwise pseudonyms handed out, so the receiver can resolve its own;
- ``events``: append-only evidence (link, merge, elevate, unlink, provider), hash-chained so a
  changed, inserted or removed row is detectable (``verify_events``); cutting off the newest
  rows is only detectable against a head hash kept elsewhere (``events()[-1].hash``).

The 基本4情報 are never stored: they are compared at link time and dropped.

Writes go through ``transaction()``, which yields an ``IdentityTx``: one ``BEGIN IMMEDIATE``
transaction, so a refused request writes nothing.
"""

from __future__ import annotations

import abc
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from mesh.datasets import canonical_json
from mesh.db import Database

MIGRATIONS = [
    # 1: providers, persons, linked ids, replay protection, pseudonyms, evidence
    """
    CREATE TABLE identity_providers (
        participant_id TEXT PRIMARY KEY,
        platform_name TEXT NOT NULL,
        max_ial INTEGER NOT NULL CHECK (max_ial BETWEEN 1 AND 3),
        max_aal INTEGER NOT NULL CHECK (max_aal BETWEEN 1 AND 3),
        registered_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE persons (id TEXT PRIMARY KEY, created_at TEXT NOT NULL);
    CREATE TABLE linked_ids (
        platform TEXT NOT NULL REFERENCES identity_providers(participant_id),
        local_id TEXT NOT NULL,
        person_id TEXT NOT NULL REFERENCES persons(id),
        ial INTEGER NOT NULL CHECK (ial BETWEEN 1 AND 3),
        aal INTEGER NOT NULL CHECK (aal BETWEEN 1 AND 3),
        asserted_ial INTEGER NOT NULL CHECK (asserted_ial BETWEEN 1 AND 3),
        asserted_aal INTEGER NOT NULL CHECK (asserted_aal BETWEEN 1 AND 3),
        elevated_from TEXT,
        linked_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (platform, local_id)
    );
    CREATE INDEX linked_ids_by_person ON linked_ids(person_id);
    CREATE TABLE seen_assertions (
        issuer TEXT NOT NULL,
        jti TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        seen_at TEXT NOT NULL,
        PRIMARY KEY (issuer, jti)
    );
    CREATE INDEX seen_assertions_by_expiry ON seen_assertions(expires_at);
    CREATE TABLE pseudonyms (
        participant_id TEXT NOT NULL,
        pseudonym TEXT NOT NULL,
        person_id TEXT NOT NULL REFERENCES persons(id),
        issued_at TEXT NOT NULL,
        PRIMARY KEY (participant_id, pseudonym)
    );
    CREATE INDEX pseudonyms_by_person ON pseudonyms(person_id);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        person_id TEXT,
        platform TEXT,
        local_id TEXT,
        detail_json TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX events_by_person ON events(person_id)
    """,
]
EVENT_KINDS = ("link", "merge", "elevate", "unlink", "provider")
GENESIS = "0" * 64


def open_identity_db(identity_dir: Path, database: str | None = None) -> Database:
    """``identity_dir``/identity.db, or schema ``identity`` of the registry's PostgreSQL
    database (registry/database.py says which; ``identity_dir`` is ``DATA_DIR/identity``)."""
    from registry.database import database_url

    url = database_url(identity_dir.parent, database)
    if url is not None:
        from mesh.db_pg import PgDatabase

        return PgDatabase(url, MIGRATIONS, schema="identity")  # type: ignore[return-value]
    return Database(identity_dir / "identity.db", MIGRATIONS, synchronous="FULL")


@dataclass(frozen=True)
class Provider:
    participant_id: str
    platform_name: str
    max_ial: int
    max_aal: int
    registered_at: str


@dataclass(frozen=True)
class TransferLevels:
    """One source id's levels and its person's levels on the target platform (None: no id there)."""

    source_ial: int
    source_aal: int
    target_ial: int | None
    target_aal: int | None


@dataclass(frozen=True)
class LinkedId:
    platform: str
    local_id: str
    person_id: str
    ial: int
    aal: int
    asserted_ial: int
    asserted_aal: int
    elevated_from: str | None
    linked_at: str

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class IdentityEvent:
    seq: int
    at: str
    kind: str
    person_id: str | None
    platform: str | None
    local_id: str | None
    detail: dict[str, Any]
    hash: str


def _event_hash(prev: str, seq: int, at: str, kind: str, person_id: str | None,
                platform: str | None, local_id: str | None, detail: dict[str, Any]) -> str:
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "person_id": person_id,
                           "platform": platform, "local_id": local_id, "detail": detail})
    return hashlib.sha256(prev.encode() + body).hexdigest()


def _provider(r: aiosqlite.Row) -> Provider:
    return Provider(r["participant_id"], r["platform_name"], r["max_ial"], r["max_aal"],
                    r["registered_at"])


def _linked(r: aiosqlite.Row) -> LinkedId:
    return LinkedId(r["platform"], r["local_id"], r["person_id"], r["ial"], r["aal"],
                    r["asserted_ial"], r["asserted_aal"], r["elevated_from"], r["linked_at"])


class _Reads(abc.ABC):
    """Queries shared by the store (autocommit reads) and a transaction; each supplies how a
    query runs."""

    @abc.abstractmethod
    async def _one(self, sql: str, params: tuple = ()) -> aiosqlite.Row | None:
        """The first row of ``sql``, or None."""

    @abc.abstractmethod
    async def _all(self, sql: str, params: tuple = ()) -> list[aiosqlite.Row]:
        """Every row of ``sql``."""

    async def provider(self, participant_id: str) -> Provider | None:
        row = await self._one("SELECT * FROM identity_providers WHERE participant_id = ?",
                              (participant_id,))
        return _provider(row) if row else None

    async def linked(self, platform: str, local_id: str) -> LinkedId | None:
        row = await self._one("SELECT * FROM linked_ids WHERE platform = ? AND local_id = ?",
                              (platform, local_id))
        return _linked(row) if row else None

    async def ids_of(self, person_id: str) -> list[LinkedId]:
        return [_linked(r) for r in await self._all(
            "SELECT * FROM linked_ids WHERE person_id = ? ORDER BY linked_at, platform",
            (person_id,))]

    async def transfer_levels(self, source: str, target: str, local_ids: list[str]
                              ) -> dict[str, TransferLevels]:
        """For each of ``source``'s ``local_ids`` on record: its levels and, when the same
        person has an id on ``target``, that id's levels (the best, if they have several)."""
        found: dict[str, TransferLevels] = {}
        for start in range(0, len(local_ids), 20_000):
            rows = await self._all(
                "SELECT s.local_id, s.ial, s.aal, t.ial AS t_ial, t.aal AS t_aal "
                "FROM json_each(?) j JOIN linked_ids s ON s.platform = ? AND s.local_id = j.value "
                "LEFT JOIN linked_ids t ON t.person_id = s.person_id AND t.platform = ? "
                "ORDER BY CASE WHEN t.ial < t.aal THEN t.ial ELSE t.aal END",
                (json.dumps(local_ids[start:start + 20_000]), source, target))
            for r in rows:  # ascending: the best target id comes last and wins
                linked = r["t_ial"] is not None
                found[r["local_id"]] = TransferLevels(
                    r["ial"], r["aal"], r["t_ial"] if linked else None,
                    r["t_aal"] if linked else None)
        return found


class IdentityTx(_Reads):
    """Reads and writes inside one open transaction (see ``IdentityStore.transaction``)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def _one(self, sql: str, params: tuple = ()) -> aiosqlite.Row | None:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, params: tuple = ()) -> list[aiosqlite.Row]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def save_provider(self, participant_id: str, platform_name: str, max_ial: int,
                            max_aal: int, now: str) -> None:
        await self.conn.execute(
            "INSERT INTO identity_providers(participant_id, platform_name, max_ial, max_aal, "
            "registered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(participant_id) DO "
            "UPDATE SET platform_name = excluded.platform_name, max_ial = excluded.max_ial, "
            "max_aal = excluded.max_aal, updated_at = excluded.updated_at",
            (participant_id, platform_name, max_ial, max_aal, now, now))

    async def seen(self, issuer: str, jti: str) -> bool:
        return await self._one("SELECT 1 FROM seen_assertions WHERE issuer = ? AND jti = ?",
                               (issuer, jti)) is not None

    async def remember(self, issuer: str, jti: str, expires_at: str, now: str) -> None:
        await self.conn.execute("INSERT INTO seen_assertions(issuer, jti, expires_at, seen_at) "
                                "VALUES (?, ?, ?, ?)", (issuer, jti, expires_at, now))

    async def prune_seen(self, before: str) -> int:
        """Forget used assertion ids that expired before ``before`` (they fail freshness anyway)."""
        cur = await self.conn.execute("DELETE FROM seen_assertions WHERE expires_at < ?", (before,))
        return cur.rowcount

    async def new_person(self, now: str) -> str:
        person_id = str(uuid.uuid4())
        await self.conn.execute("INSERT INTO persons(id, created_at) VALUES (?, ?)",
                                (person_id, now))
        return person_id

    async def person_created(self, person_id: str) -> str:
        row = await self._one("SELECT created_at FROM persons WHERE id = ?", (person_id,))
        if row is None:
            raise LookupError(person_id)
        return row["created_at"]

    async def save_link(self, link: LinkedId, now: str) -> None:
        """Insert or replace the record of one (platform, local id); keeps its first link time."""
        await self.conn.execute(
            "INSERT INTO linked_ids(platform, local_id, person_id, ial, aal, asserted_ial, "
            "asserted_aal, elevated_from, linked_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(platform, local_id) DO UPDATE SET person_id = excluded.person_id, "
            "ial = excluded.ial, aal = excluded.aal, asserted_ial = excluded.asserted_ial, "
            "asserted_aal = excluded.asserted_aal, elevated_from = excluded.elevated_from, "
            "updated_at = excluded.updated_at",
            (link.platform, link.local_id, link.person_id, link.ial, link.aal, link.asserted_ial,
             link.asserted_aal, link.elevated_from, link.linked_at, now))

    async def move_person(self, source: str, target: str) -> None:
        """Merge: every id and pseudonym of ``source`` now belongs to ``target``."""
        await self.conn.execute("UPDATE linked_ids SET person_id = ? WHERE person_id = ?",
                                (target, source))
        await self.conn.execute("UPDATE pseudonyms SET person_id = ? WHERE person_id = ?",
                                (target, source))

    async def remove_link(self, platform: str, local_id: str) -> None:
        await self.conn.execute("DELETE FROM linked_ids WHERE platform = ? AND local_id = ?",
                                (platform, local_id))

    async def append_event(self, kind: str, at: str, *, person_id: str | None = None,
                           platform: str | None = None, local_id: str | None = None,
                           detail: dict[str, Any] | None = None) -> int:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind}")
        detail = detail or {}
        last = await self._one("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
        digest = _event_hash(prev, seq, at, kind, person_id, platform, local_id, detail)
        await self.conn.execute(
            "INSERT INTO events(seq, at, kind, person_id, platform, local_id, detail_json, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, kind, person_id, platform, local_id,
             json.dumps(detail, ensure_ascii=False, sort_keys=True), prev, digest))
        return seq

    async def record_pseudonym(self, participant_id: str, pseudonym: str, person_id: str,
                               now: str) -> None:
        await self.conn.execute(
            "INSERT INTO pseudonyms(participant_id, pseudonym, person_id, issued_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(participant_id, pseudonym) DO NOTHING",
            (participant_id, pseudonym, person_id, now))


class IdentityStore(_Reads):
    """Read access plus ``transaction()`` for writes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _one(self, sql: str, params: tuple = ()) -> aiosqlite.Row | None:
        return await self.db.fetchone(sql, params)

    async def _all(self, sql: str, params: tuple = ()) -> list[aiosqlite.Row]:
        return await self.db.fetchall(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[IdentityTx]:
        async with self.db.transaction() as conn:
            yield IdentityTx(conn)

    async def providers(self) -> list[Provider]:
        return [_provider(r) for r in await self._all(
            "SELECT * FROM identity_providers ORDER BY participant_id")]

    async def pseudonym_owner(self, participant_id: str, pseudonym: str) -> str | None:
        """The person a pseudonym handed to ``participant_id`` stands for, if any."""
        row = await self._one("SELECT person_id FROM pseudonyms WHERE participant_id = ? AND "
                              "pseudonym = ?", (participant_id, pseudonym))
        return row["person_id"] if row else None

    async def events(self, *, person_id: str | None = None) -> list[IdentityEvent]:
        sql, params = "SELECT * FROM events", ()
        if person_id is not None:
            sql, params = sql + " WHERE person_id = ?", (person_id,)
        return [IdentityEvent(r["seq"], r["at"], r["kind"], r["person_id"], r["platform"],
                              r["local_id"], json.loads(r["detail_json"]), r["hash"])
                for r in await self._all(sql + " ORDER BY seq", params)]

    async def verify_events(self) -> int | None:
        """Walk the hash chain; return the first ``seq`` that does not verify (a changed,
        inserted or deleted row), or None when the whole log is intact."""
        prev, expected_seq = GENESIS, 1
        for r in await self._all("SELECT * FROM events ORDER BY seq"):
            digest = _event_hash(prev, r["seq"], r["at"], r["kind"], r["person_id"],
                                 r["platform"], r["local_id"], json.loads(r["detail_json"]))
            if r["seq"] != expected_seq or r["prev_hash"] != prev or r["hash"] != digest:
                return r["seq"]
            prev, expected_seq = r["hash"], expected_seq + 1
        return None
