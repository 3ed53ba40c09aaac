"""ConsentStore: residents' consents in ``DATA_DIR/consent.db`` (DESIGN §8; appendix 5-4…5-6).

A consent says: resident R (the platform's local resident id — the value of the personal
dataset's declared subject-id field) lets participant P receive R's records of dataset D
(``"*"``: every personal dataset on this connector) for purpose U; optionally only P's service
S, and of S only component (部品) C; optionally only the data items (列名) I (None: all items);
until an optional expiry. A consent for S covers all of S's components; a consent without a
service covers every service of P; a transfer naming a service or component needs a consent
that is unscoped or scoped to exactly that.

Tables: ``consents`` is the current state, one row per grant; a withdrawal only fills
``withdrawn_at`` (a trigger refuses every other UPDATE and every DELETE). ``consent_events`` is
the evidence: append-only (triggers refuse UPDATE and DELETE) — granted, superseded, withdrawn,
expired — each with when it took effect, when it was recorded and who acted. The triggers are
created after the numbered migrations (``mesh.db`` splits scripts on ';', which a trigger body
contains), with ``IF NOT EXISTS``.

Transfers ask :meth:`ConsentStore.scope` once per batch. The answer is cached per scope key and
checked with one indexed query (the newest event's seq): unchanged and no expiry passed → the
cached scope; otherwise only the residents touched since (events, expiries) are re-read, so a
withdrawal reaches the next batch without re-reading a million consents.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.consent.scope import SNAPSHOTS, ConsentScope, ScopeCache, ScopeKey
from mesh.clock import iso, utcnow
from mesh.datasets import ID_PATTERN
from mesh.db import Database
from mesh.errors import AreameshError, Conflict, InvalidRequest, NotFound
from mesh.ids import validate_corporate_number, validate_local_government_code

KnownSubject = Callable[[str], Awaitable[bool]]

MIGRATIONS = [
    """
    CREATE TABLE consents (
        id TEXT PRIMARY KEY,
        resident TEXT NOT NULL,
        dataset_id TEXT NOT NULL,
        participant TEXT NOT NULL,
        service_id TEXT NOT NULL DEFAULT '',
        component_id TEXT NOT NULL DEFAULT '',
        purpose TEXT NOT NULL,
        items_json TEXT,
        granted_at TEXT NOT NULL,
        expires_at TEXT,
        withdrawn_at TEXT,
        withdraw_reason TEXT
    );
    CREATE INDEX consents_scope ON consents(participant, purpose, dataset_id, service_id,
                                            component_id, resident);
    CREATE INDEX consents_by_resident ON consents(resident, participant);
    CREATE INDEX consents_expiry ON consents(expires_at) WHERE expires_at IS NOT NULL;
    CREATE INDEX consents_key_expiry ON consents(participant, purpose, expires_at)
        WHERE expires_at IS NOT NULL;
    CREATE TABLE consent_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        consent_id TEXT NOT NULL,
        resident TEXT NOT NULL,
        event TEXT NOT NULL,
        effective_at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        actor TEXT,
        detail_json TEXT NOT NULL
    );
    CREATE INDEX consent_events_by_resident ON consent_events(resident, seq);
    CREATE UNIQUE INDEX consent_events_expired_once ON consent_events(consent_id)
        WHERE event = 'expired'
    """,
    # resident assertions spent by consents relayed over the mesh (replay protection)
    """
    CREATE TABLE spent_assertions (
        jti TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL,
        consent_id TEXT NOT NULL
    );
    CREATE INDEX spent_assertions_expiry ON spent_assertions(expires_at)
    """,
]
TRIGGERS = [
    "CREATE TRIGGER IF NOT EXISTS consent_events_no_update BEFORE UPDATE ON consent_events "
    "BEGIN SELECT RAISE(ABORT, 'consent_events is append-only evidence'); END",
    "CREATE TRIGGER IF NOT EXISTS consent_events_no_delete BEFORE DELETE ON consent_events "
    "BEGIN SELECT RAISE(ABORT, 'consent_events is append-only evidence'); END",
    "CREATE TRIGGER IF NOT EXISTS consents_no_delete BEFORE DELETE ON consents "
    "BEGIN SELECT RAISE(ABORT, 'consents are never deleted; withdraw them'); END",
    "CREATE TRIGGER IF NOT EXISTS consents_withdraw_only BEFORE UPDATE ON consents "
    "WHEN OLD.withdrawn_at IS NOT NULL OR NEW.withdrawn_at IS NULL OR NEW.id != OLD.id "
    "OR NEW.resident != OLD.resident OR NEW.dataset_id != OLD.dataset_id "
    "OR NEW.participant != OLD.participant OR NEW.service_id != OLD.service_id "
    "OR NEW.component_id != OLD.component_id OR NEW.purpose != OLD.purpose "
    "OR NEW.items_json IS NOT OLD.items_json OR NEW.granted_at != OLD.granted_at "
    "OR NEW.expires_at IS NOT OLD.expires_at "
    "BEGIN SELECT RAISE(ABORT, 'a consent can only be withdrawn, once'); END",
]
LOCAL_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}\Z")
_COLUMNS = ("id, resident, dataset_id, participant, service_id, component_id, purpose, items_json,"
            " granted_at, expires_at, withdrawn_at, withdraw_reason")


@dataclass(frozen=True)
class ConsentGrant:
    """One consent to record (the input of :meth:`ConsentStore.grant_many`)."""

    resident: str
    participant: str
    purpose: str
    dataset_id: str = "*"
    service_id: str | None = None
    component_id: str | None = None
    items: tuple[str, ...] | None = None
    expires_at: datetime | None = None

    def key(self) -> tuple[str, ...]:
        return (self.resident, self.dataset_id, self.participant, self.service_id or "",
                self.component_id or "", self.purpose)


@dataclass(frozen=True)
class Consent:
    id: str
    resident: str
    dataset_id: str
    participant: str
    service_id: str | None
    component_id: str | None
    purpose: str
    items: tuple[str, ...] | None
    granted_at: str
    expires_at: str | None
    withdrawn_at: str | None
    withdraw_reason: str | None

    def status(self, at: str | None = None) -> str:
        """``withdrawn``, ``expired`` or ``active`` at ``at`` (ISO UTC; default now)."""
        at = at or iso(utcnow())
        if self.withdrawn_at and self.withdrawn_at <= at:
            return "withdrawn"
        if self.expires_at and self.expires_at <= at:
            return "expired"
        return "active"

    def to_json(self, at: str | None = None) -> dict[str, Any]:
        doc = asdict(self)
        doc["items"] = list(self.items) if self.items is not None else None
        doc["status"] = self.status(at)
        return doc


@dataclass(frozen=True)
class ConsentProof:
    """What proved that the resident themself asked: a single-use identity assertion (its id and
    expiry) and the evidence kept with the consent's ``granted`` event."""

    jti: str
    expires_at: str
    evidence: dict[str, Any]


@dataclass(frozen=True)
class ConsentEvent:
    seq: int
    consent_id: str
    resident: str
    event: str           # granted | superseded | withdrawn | expired
    effective_at: str
    recorded_at: str
    actor: str | None
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def open_consent_db(data_dir: Path) -> Database:
    return Database(data_dir / "consent.db", MIGRATIONS, synchronous="FULL")


class ConsentStore:
    """Grant, withdraw, list and prove consents; answer "who may be sent" per batch."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache = ScopeCache(db, snapshots=db.path.parent / SNAPSHOTS)

    @classmethod
    async def open(cls, data_dir: Path) -> ConsentStore:
        db = open_consent_db(data_dir)
        try:
            if db.path.exists():
                await asyncio.to_thread(_readable, db.path)
            await db.open()
            for statement in TRIGGERS:
                await db.conn.execute(statement)
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise AreameshError(f"{db.path} is not a readable consent database "
                                f"({str(exc).splitlines()[0]}); restore it from a backup",
                                message_ja=f"同意データベース {db.path} を読めません（破損の可能性）",
                                code="consent_db_unreadable") from None
        return cls(db)

    async def close(self) -> None:
        self._cache.close()
        await self.db.close()

    async def grant(self, resident: str, *, participant: str, purpose: str, dataset_id: str = "*",
                    service_id: str | None = None, component_id: str | None = None,
                    items: Iterable[str] | None = None, expires_at: datetime | None = None,
                    known_subject: KnownSubject | None = None, actor: str | None = None,
                    proof: ConsentProof | None = None) -> str:
        """Record one consent and return its id. An active consent with the same key (resident,
        dataset, participant, service, component, purpose) is returned as is when identical and
        superseded otherwise. ``known_subject`` (when given) must confirm the resident exists in
        the personal data, else ``NotFound`` ``unknown_resident``. ``proof`` (when given) is
        spent in the same transaction: a second use is ``Conflict`` ``assertion_replayed``."""
        g = ConsentGrant(resident, participant, purpose, dataset_id, service_id, component_id,
                         tuple(items) if items is not None else None, expires_at)
        return (await self.grant_many([g], known_subject=known_subject, actor=actor,
                                      proof=proof))[0]

    async def grant_many(self, grants: Iterable[ConsentGrant], *,
                         known_subject: KnownSubject | None = None,
                         actor: str | None = None, proof: ConsentProof | None = None) -> list[str]:
        """Record many consents in one transaction (all or none); ids in input order. An invalid
        grant stops the call before anything is recorded (``InvalidRequest``; its position in
        ``grants`` is ``details["row"]``, counted from 0).

        Made for volume (a municipality loading its consent register, ~1M grants): the fields
        grants share (participant, dataset, purpose, service, component, items, expiry) are
        checked and encoded once per distinct set, each ``granted`` event's JSON is that set's
        text with the id and the resident put in, and the statements run in one trip to the
        database thread with a larger page cache (the indexes take random inserts)."""
        now = iso(utcnow())
        checked = _checked_all(grants, now)
        if known_subject is not None:
            for resident in dict.fromkeys(g.resident for g in checked):
                if not await known_subject(resident):
                    raise unknown_resident(resident)
        cids = _new_ids(len(checked))
        proof_json = None if proof is None else json.dumps(proof.evidence, ensure_ascii=False)

        def work(conn: sqlite3.Connection) -> list[str]:
            big = len(checked) > _BULK
            if big:   # random inserts into five indexes: keep their pages in memory meanwhile
                cache = conn.execute("PRAGMA cache_size").fetchone()[0]
                conn.execute(f"PRAGMA cache_size = {_BULK_CACHE}")
            try:
                return _record_grants(conn, checked, cids, now, actor, proof_json)
            finally:
                if big:
                    conn.execute(f"PRAGMA cache_size = {cache}")

        async with self.db.transaction() as conn:
            ids = await self.db.run(work)
            if proof is not None:
                await _spend(conn, proof, ids[0] if ids else "", now)
        return ids

    async def granted_before(self, ids: Iterable[str], at: str) -> int:
        """How many distinct consents of ``ids`` were granted before ``at``: what a bulk load
        found already recorded, as it was."""
        unique = sorted(set(ids))
        count = 0
        for start in range(0, len(unique), 20_000):
            row = await self.db.fetchone(
                "SELECT count(*) FROM consents WHERE granted_at < ? AND id IN "
                "(SELECT value FROM json_each(?))", (at, json.dumps(unique[start:start + 20_000])))
            count += row[0]
        return count

    async def withdraw(self, consent_id: str | None = None, *, reason: str = "",
                       resident: str | None = None, participant: str | None = None,
                       purpose: str | None = None, dataset_id: str | None = None,
                       service_id: str | None = None, component_id: str | None = None,
                       actor: str | None = None) -> list[str]:
        """Withdraw one consent by id, or every active consent of ``resident`` matching the given
        key fields (``participant`` required; None = any). Returns the withdrawn ids. With an id
        and ``resident``, a consent of another resident is reported as unknown."""
        now = iso(utcnow())
        if consent_id is not None:
            consent = await self.get(consent_id)
            if resident is not None and consent.resident != resident:
                raise _unknown_consent(consent_id)
            if consent.withdrawn_at is not None:
                raise Conflict(f"consent {consent_id} was already withdrawn at "
                               f"{consent.withdrawn_at}",
                               message_ja=f"同意 {consent_id} は撤回済みです（{consent.withdrawn_at}）",
                               code="consent_already_withdrawn")
            targets = [consent]
        else:
            if resident is None or participant is None:
                raise InvalidRequest("withdraw needs a consent id, or a resident and a participant",
                                     message_ja="撤回には同意ID、または住民と提供先の指定が必要です",
                                     code="withdraw_target_missing")
            targets = [c for c in await self.list(resident=resident, participant=participant,
                                                  active_only=True, at=now)
                       if (purpose is None or c.purpose == purpose)
                       and (dataset_id is None or c.dataset_id == dataset_id)
                       and (service_id is None or c.service_id == service_id)
                       and (component_id is None or c.component_id == component_id)]
            if not targets:
                raise NotFound(f"resident {resident!r} has no active consent for {participant} "
                               "matching the request",
                               message_ja=f"住民 {resident!r} には {participant} への有効な同意がありません",
                               code="no_active_consent")
        async with self.db.transaction() as conn:
            for c in targets:
                await conn.execute("UPDATE consents SET withdrawn_at = ?, withdraw_reason = ? "
                                   "WHERE id = ? AND withdrawn_at IS NULL", (now, reason, c.id))
                await conn.execute(
                    "INSERT INTO consent_events(consent_id, resident, event, effective_at, "
                    "recorded_at, actor, detail_json) VALUES (?, ?, 'withdrawn', ?, ?, ?, ?)",
                    (c.id, c.resident, now, now, actor,
                     json.dumps({"reason": reason}, ensure_ascii=False)))
        return [c.id for c in targets]

    async def get(self, consent_id: str) -> Consent:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM consents WHERE id = ?", (consent_id,))
        if row is None:
            raise _unknown_consent(consent_id)
        return _consent(row)

    async def list(self, *, resident: str | None = None, participant: str | None = None,
                   dataset_id: str | None = None, active_only: bool = False,
                   at: str | None = None) -> list[Consent]:
        """Consents, newest first, filtered by resident, participant and dataset."""
        at = at or iso(utcnow())
        sql, params = f"SELECT {_COLUMNS} FROM consents WHERE 1 = 1", []
        for column, value in (("resident", resident), ("participant", participant),
                              ("dataset_id", dataset_id)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if active_only:
            sql += (" AND (withdrawn_at IS NULL OR withdrawn_at > ?)"
                    " AND (expires_at IS NULL OR expires_at > ?)")
            params += [at, at]
        rows = await self.db.fetchall(sql + " ORDER BY granted_at DESC, rowid DESC", params)
        return [_consent(r) for r in rows]

    async def history(self, resident: str) -> list[ConsentEvent]:
        """Every change to ``resident``'s consents, oldest first (expiries recorded first)."""
        await self.sweep_expired(resident=resident)
        rows = await self.db.fetchall(
            "SELECT * FROM consent_events WHERE resident = ? ORDER BY effective_at, seq",
            (resident,))
        return [ConsentEvent(r["seq"], r["consent_id"], r["resident"], r["event"],
                             r["effective_at"], r["recorded_at"], r["actor"],
                             json.loads(r["detail_json"])) for r in rows]

    async def sweep_expired(self, *, resident: str | None = None, at: str | None = None) -> int:
        """Append an ``expired`` event (effective at the expiry) for every consent that expired
        unwithdrawn and has none yet; returns how many. Safe to call any time, from any process."""
        at = at or iso(utcnow())
        sql = ("SELECT id, resident, expires_at FROM consents WHERE expires_at <= ? AND "
               "(withdrawn_at IS NULL OR withdrawn_at > expires_at) AND NOT EXISTS (SELECT 1 FROM "
               "consent_events e WHERE e.consent_id = consents.id AND e.event = 'expired')")
        params: list[Any] = [at]
        if resident is not None:
            sql += " AND resident = ?"
            params.append(resident)
        rows = await self.db.fetchall(sql, params)
        if rows:
            async with self.db.transaction() as conn:
                await conn.executemany(
                    "INSERT OR IGNORE INTO consent_events(consent_id, resident, event, effective_at,"
                    " recorded_at, actor, detail_json) VALUES (?, ?, 'expired', ?, ?, NULL, '{}')",
                    [(r["id"], r["resident"], r["expires_at"], at) for r in rows])
        return len(rows)

    async def scope(self, dataset_id: str, participant: str, purpose: str, *,
                    service: str | None = None, component: str | None = None,
                    at: datetime | None = None) -> ConsentScope:
        """Who may be sent to ``participant`` (its ``service``/``component``) for ``purpose``,
        with which items, at ``at`` (default now: cached, see the module docstring)."""
        key = _scope_key(dataset_id, participant, purpose, service, component)
        return await self._cache.get(key, iso(at) if at else None)

    def current_scope(self, dataset_id: str, participant: str, purpose: str, *,
                      service: str | None = None, component: str | None = None
                      ) -> ConsentScope | None:
        """``scope`` now, if the cached one still holds; None when consent changed since (or
        nothing is cached yet): then await ``scope``. Synchronous, safe from a worker thread."""
        return self._cache.current(_scope_key(dataset_id, participant, purpose, service, component))

    async def valid_subjects(self, dataset_id: str, participant: str, purpose: str,
                             component: str | None = None, at: datetime | None = None, *,
                             service: str | None = None,
                             items: Iterable[str] | None = None) -> frozenset[str]:
        """Residents whose consent is valid now (or at ``at``); with ``items``, only those whose
        consent covers every one of them. Call once per batch."""
        found = await self.scope(dataset_id, participant, purpose, service=service,
                                 component=component, at=at)
        return found.subjects if items is None else found.covering(frozenset(items))


def _checked(g: ConsentGrant, now: str) -> ConsentGrant:
    """Validate one grant (InvalidRequest with a stable code), returning it normalised."""
    for name in ("participant", "dataset_id"):
        if not isinstance(getattr(g, name), str):
            raise InvalidRequest(f"{name} must be a string",
                                 message_ja=f"{name} は文字列で指定してください",
                                 code="invalid_participant_id" if name == "participant"
                                 else "invalid_dataset_id")
    if not isinstance(g.resident, str) or not LOCAL_ID.match(g.resident):
        raise InvalidRequest(f"resident id {g.resident!r} must be 1-128 letters, digits or ._:@/-",
                             message_ja=f"住民ID {g.resident!r} は英数字と ._:@/- の1〜128文字にしてください",
                             code="invalid_resident")
    if len(g.participant) == 6:
        validate_local_government_code(g.participant)
    elif len(g.participant) == 13:
        validate_corporate_number(g.participant)
    else:
        raise InvalidRequest(
            f"participant id {g.participant!r} must be a 6-digit local government code or a "
            "13-digit corporate number",
            message_ja=(f"提供先ID {g.participant!r} は全国地方公共団体コード（6桁）"
                        "か法人番号（13桁）にしてください"),
            code="invalid_participant_id")
    if g.dataset_id != "*" and not ID_PATTERN.match(g.dataset_id):
        raise InvalidRequest(f"invalid dataset id {g.dataset_id!r} (or '*' for every dataset)",
                             message_ja=(f"データセットID {g.dataset_id!r} が正しくありません"
                                         "（全データセットは '*'）"),
                             code="invalid_dataset_id")
    check_service_scope(g.service_id, g.component_id)
    purpose = g.purpose.strip() if isinstance(g.purpose, str) else ""
    if not purpose or len(purpose) > 200:
        raise InvalidRequest("purpose must be 1-200 characters", code="invalid_purpose",
                             message_ja="利用目的は1〜200文字で指定してください")
    items = g.items
    if items is not None:
        items = tuple(dict.fromkeys(i.strip() for i in items if isinstance(i, str)))
        if not items or len(items) != len(g.items) or any(not i for i in items):
            raise InvalidRequest("items must be a non-empty list of distinct column names "
                                 "(omit it to consent to all items)", code="invalid_items",
                                 message_ja="項目は重複のない列名のリストで指定してください（全項目なら省略）")
    if g.expires_at is not None and iso(g.expires_at) <= now:
        raise InvalidRequest(f"expiry {iso(g.expires_at)} is not in the future",
                             message_ja=f"有効期限 {iso(g.expires_at)} が過去の日時です",
                             code="invalid_expiry")
    return ConsentGrant(g.resident, g.participant, purpose, g.dataset_id, g.service_id,
                        g.component_id, items, g.expires_at)


_BULK = 10_000             # grants per call above which the page cache is enlarged
_BULK_CACHE = -262_144     # KiB (256 MiB), only while such a call runs
_SHARED_FIELDS = ("participant", "purpose", "dataset_id", "service_id", "component_id", "items",
                  "expires_at")


def _checked_all(grants: Iterable[ConsentGrant], now: str) -> list[ConsentGrant]:
    """``check_grants`` that raises the first invalid grant's ``InvalidRequest``, with its
    position as ``details["row"]``."""
    checked, errors = check_grants(grants, now, stop_at_first=True)
    if errors:
        row, exc = errors[0]
        exc.details = {**(exc.details or {}), "row": row}
        raise exc
    return checked


def check_grants(grants: Iterable[ConsentGrant], now: str, *, stop_at_first: bool = False
                 ) -> tuple[list[ConsentGrant], list[tuple[int, InvalidRequest]]]:
    """Every valid grant, normalised, and ``(position, error)`` of every invalid one (counted
    from 0). The fields grants share (participant, purpose, dataset, service, component, items,
    expiry) are checked once per distinct set: in a bulk load only the resident differs."""
    shared: dict[tuple[Any, ...], ConsentGrant | InvalidRequest] = {}
    out: list[ConsentGrant] = []
    errors: list[tuple[int, InvalidRequest]] = []
    for row, g in enumerate(grants):
        try:
            resident = g.resident
            if not isinstance(resident, str) or not LOCAL_ID.match(resident):
                _checked(g, now)          # raises the resident's error
            key = (g.participant, g.purpose, g.dataset_id, g.service_id, g.component_id, g.items,
                   g.expires_at)
            try:
                base = shared.get(key)
            except TypeError:             # unhashable (items given as a list): in full
                out.append(_checked(g, now))
                continue
            if base is None:
                try:
                    base = shared[key] = _checked(g, now)
                except InvalidRequest as exc:
                    base = shared[key] = exc
            if isinstance(base, InvalidRequest):
                raise InvalidRequest(base.message, message_ja=base.message_ja, code=base.code)
            out.append(base if base.resident == resident else _with_resident(base, resident))
        except InvalidRequest as exc:
            errors.append((row, exc))
            if stop_at_first:
                break
    return out, errors


def _with_resident(g: ConsentGrant, resident: str) -> ConsentGrant:
    """``g`` for another resident, without ``dataclasses.replace``'s field walk."""
    copy = object.__new__(ConsentGrant)
    copy.__dict__.update(g.__dict__)
    copy.__dict__["resident"] = resident
    return copy


def _new_ids(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as text, as ``str(uuid.uuid4())`` gives them, from one
    read of the system's random source."""
    h = os.urandom(16 * n).hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-4{h[i + 13:i + 16]}-"
            f"{_VARIANT[h[i + 16]]}{h[i + 17:i + 20]}-{h[i + 20:i + 32]}"
            for i in range(0, 32 * n, 32)]


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}   # RFC 4122: 10xx


def _record_grants(conn: sqlite3.Connection, checked: list[ConsentGrant], cids: list[str],
                   now: str, actor: str | None, proof_json: str | None) -> list[str]:
    """The statements of ``grant_many``, on the database thread inside its transaction."""
    active: dict[tuple[str, ...], tuple[str, str | None, str | None]] = {}
    residents = sorted({g.resident for g in checked})
    cur = conn.cursor()
    cur.row_factory = None
    for start in range(0, len(residents), 20_000):
        for cid, resident, dataset, participant, service, component, purpose, items, expires \
                in cur.execute(
                "SELECT id, resident, dataset_id, participant, service_id, component_id, "
                "purpose, items_json, expires_at FROM consents WHERE withdrawn_at IS NULL AND "
                "(expires_at IS NULL OR expires_at > ?) AND resident IN "
                "(SELECT value FROM json_each(?))",
                (now, json.dumps(residents[start:start + 20_000]))):
            active[(resident, dataset, participant, service or "", component or "",
                    purpose)] = (cid, items, expires)
    ids: list[str] = [""] * len(checked)
    inserts, superseded, events = [], [], []
    texts: dict[tuple[Any, ...], tuple[str | None, str | None, str, tuple[Any, ...]]] = {}
    # in resident order (stable: one resident's grants keep theirs) and with the new ids in
    # ascending order: the rows then reach each index as runs of neighbours instead of at
    # random (about half the insert time of a large load)
    order = sorted(range(len(checked)), key=lambda i: checked[i].resident)
    for at, cid in zip(order, sorted(cids), strict=True):
        g = checked[at]
        shared = (g.participant, g.purpose, g.dataset_id, g.service_id, g.component_id, g.items,
                  g.expires_at)
        text = texts.get(shared)
        if text is None:
            text = texts[shared] = _grant_texts(g, now, proof_json)
        items_json, expires, rest, row_tail = text
        key = g.key()
        old = active.get(key)
        if old is not None and old[2] == expires and (old[1] == items_json or (
                old[1] is not None and g.items is not None
                and tuple(json.loads(old[1])) == g.items)):
            ids[at] = old[0]
            continue
        if old is not None:
            superseded.append((now, f"superseded by {cid}", old[0]))
            events.append((old[0], g.resident, "superseded", now, now, actor,
                           json.dumps({"by": cid}, ensure_ascii=False)))
        active[key] = (cid, items_json, expires)
        inserts.append((cid, g.resident, *row_tail))
        events.append((cid, g.resident, "granted", now, now, actor,
                       f'{{"id": "{cid}", "resident": "{g.resident}", {rest}'))
        ids[at] = cid
    cur.executemany(
        "INSERT INTO consents(id, resident, dataset_id, participant, service_id, component_id, "
        "purpose, items_json, granted_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        inserts)
    cur.executemany(  # after the inserts: a grant may supersede one of this call
        "UPDATE consents SET withdrawn_at = ?, withdraw_reason = ? WHERE id = ?", superseded)
    cur.executemany(
        "INSERT INTO consent_events(consent_id, resident, event, effective_at, recorded_at, "
        "actor, detail_json) VALUES (?, ?, ?, ?, ?, ?, ?)", events)
    return ids


def _grant_texts(g: ConsentGrant, now: str, proof_json: str | None
                 ) -> tuple[str | None, str | None, str, tuple[Any, ...]]:
    """What every grant sharing ``g``'s fields has in common: items as stored, expiry, the
    ``granted`` event's JSON after the id and the resident (the same text as ``json.dumps`` of
    the consent's fields, as ``Consent.to_json`` orders them, plus the proof) and the
    ``consents`` row after the id and the resident."""
    items_json = json.dumps(list(g.items), ensure_ascii=False) if g.items is not None else None
    expires = iso(g.expires_at) if g.expires_at else None
    detail: dict[str, Any] = {
        "dataset_id": g.dataset_id, "participant": g.participant, "service_id": g.service_id,
        "component_id": g.component_id, "purpose": g.purpose,
        "items": list(g.items) if g.items is not None else None, "granted_at": now,
        "expires_at": expires}
    rest = json.dumps(detail, ensure_ascii=False)[1:]
    if proof_json is not None:
        rest = f'{rest[:-1]}, "proof": {proof_json}}}'
    return items_json, expires, rest, (g.dataset_id, g.participant, g.service_id or "",
                                       g.component_id or "", g.purpose, items_json, now, expires)


def _readable(path: Path) -> None:
    """Raise ``sqlite3.DatabaseError`` unless ``path`` opens as SQLite (``Database.open`` cannot
    close a connection whose first PRAGMA failed)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA schema_version").fetchone()
    finally:
        con.close()


async def _spend(conn: Any, proof: ConsentProof, consent_id: str, now: str) -> None:
    """Mark ``proof``'s assertion used (and forget those long expired): a replay fails the
    whole grant, so nothing is recorded twice from one sign-in."""
    await conn.execute("DELETE FROM spent_assertions WHERE expires_at < ?", (now,))
    try:
        await conn.execute("INSERT INTO spent_assertions(jti, expires_at, consent_id) "
                           "VALUES (?, ?, ?)", (proof.jti, proof.expires_at, consent_id))
    except sqlite3.IntegrityError:
        raise Conflict("this resident assertion was already used; the resident signs in again "
                       "to give another consent",
                       message_ja="この本人確認アサーションは使用済みです。再度ログインしてください",
                       code="assertion_replayed", details={"jti": proof.jti}) from None


def check_service_scope(service_id: str | None, component_id: str | None) -> None:
    """A service and a component (部品), when given (not None), are ids; a component needs
    its service. For consents and for the transfers they apply to."""
    for name, value in (("service", service_id), ("component", component_id)):
        if value is not None and (not isinstance(value, str) or not LOCAL_ID.match(value)):
            label = "サービス" if name == "service" else "部品"
            raise InvalidRequest(f"invalid {name} id {value!r}",
                                 message_ja=f"{label}ID {value!r} が正しくありません",
                                 code=f"invalid_{name}_id")
    if component_id is not None and service_id is None:
        raise _component_without_service()


def _scope_key(dataset_id: str, participant: str, purpose: str, service: str | None,
               component: str | None) -> ScopeKey:
    if component is not None and service is None:
        raise _component_without_service()
    return ScopeKey(dataset_id, participant, purpose, service or "", component or "")


def _component_without_service() -> InvalidRequest:
    return InvalidRequest("a component is part of a service: give the service id too",
                          message_ja="部品を指定するときはサービスIDも指定してください",
                          code="component_without_service")


def unknown_resident(resident: str) -> NotFound:
    """The refusal of a consent for a resident who is not in the personal data."""
    return NotFound(f"resident {resident!r} is not in the personal data on this connector",
                    message_ja=f"住民 {resident!r} はこのコネクタの個人データにありません",
                    code="unknown_resident")


def _unknown_consent(consent_id: str) -> NotFound:
    return NotFound(f"no consent {consent_id}", message_ja=f"同意 {consent_id} はありません",
                    code="unknown_consent")


def _consent(r: Any) -> Consent:
    return Consent(r[0], r[1], r[2], r[3], r[4] or None, r[5] or None, r[6],
                   tuple(json.loads(r[7])) if r[7] is not None else None, r[8], r[9], r[10], r[11])
