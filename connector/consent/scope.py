"""ConsentScope: who may be sent, with which items, for one consumer and purpose — and its cache.

A scope is built once from every valid consent of a key (dataset, participant, purpose,
service, component): ``base_full`` holds the residents who consented to all items and
``base_restricted`` maps those who consented to some items only to those items (a resident is
restricted only when none of their valid consents covers all items). The base never changes,
so the filter's lookup index built from it is reused batch after batch. Later changes are
layered on: ``changed`` residents were re-read since; of them, ``full_extra`` now consent to all
items and ``changed_restricted`` to some.

``ScopeCache`` keeps the newest scope per key. Per call it reads the newest consent event's seq
(one indexed query); when that and the next expiry say nothing changed it returns the cached
scope. Otherwise it re-reads only the residents with new events or passed expiries, and rebuilds
the base when those exceed ``compact_after``. ``current`` makes the same check synchronously on
a read-only connection of its own, from any thread: a transfer checks and filters each batch in
one trip to a worker thread, and goes through ``get`` only when something changed.

A full read (a key's first, or after ``compact_after`` changes) runs in a worker thread on a
read-only connection of its own, in one read transaction (the newest seq, the rows and the next
expiry agree), and leaves a **snapshot** of the base in ``DATA_DIR/consent-scopes/`` (Arrow IPC:
residents, their items, the seq and time it holds, and the id and time of the event at that
seq). A process that starts later — a restart — takes the snapshot as a cached entry of that
seq and brings it up to date as above: only the residents with events since (grants and
withdrawals made while it was down, by the CLI or another process) or expiries passed since
are re-read. A snapshot is used only when the event at its seq is still the one it names (the
consent database was not replaced or restored from a backup) and its content digest matches;
otherwise it is ignored and the key read in full.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database, read_only_connection

log = logging.getLogger("areamesh.connector.consent")
SNAPSHOTS = "consent-scopes"      # DATA_DIR/consent-scopes/: scope bases as last read in full
_SNAPSHOT_FORMAT = "1"
_VALID_AT = ("granted_at <= ? AND (withdrawn_at IS NULL OR withdrawn_at > ?) "
             "AND (expires_at IS NULL OR expires_at > ?)")


@dataclass(frozen=True)
class ScopeKey:
    dataset_id: str
    participant: str
    purpose: str
    service: str = ""     # "" = the transfer names no service: only unscoped consents match
    component: str = ""

    def where(self) -> tuple[str, list[str]]:
        return ("participant = ? AND purpose = ? AND dataset_id IN (?, '*') "
                "AND service_id IN ('', ?) AND component_id IN ('', ?)",
                [self.participant, self.purpose, self.dataset_id, self.service, self.component])


@dataclass(frozen=True, eq=False)
class ConsentScope:
    at: str
    base_full: frozenset[str]
    base_restricted: Mapping[str, frozenset[str]] = field(default_factory=dict)
    changed: frozenset[str] = frozenset()
    full_extra: frozenset[str] = frozenset()
    changed_restricted: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # the base's residents as an Arrow string array when at hand (a snapshot): those of
    # ``base_full`` (any order), then those of ``base_restricted`` in its order; the filter's
    # index is built from it
    base_values: Any = field(default=None, repr=False)

    @classmethod
    def build(cls, rows: Iterable[Sequence[Any]], at: str) -> ConsentScope:
        """From ``(resident, items_json)`` rows."""
        full, restricted = _fold(rows)
        return cls(at, frozenset(full), restricted)

    def updated(self, touched: frozenset[str], rows: Iterable[Sequence[Any]], at: str
                ) -> ConsentScope:
        """This scope with the residents in ``touched`` replaced by what ``rows`` say now."""
        full, restricted = _fold(rows)
        kept = {k: v for k, v in self.changed_restricted.items() if k not in touched}
        return ConsentScope(at, self.base_full, self.base_restricted, self.changed | touched,
                            (self.full_extra - touched) | frozenset(full), {**kept, **restricted},
                            self.base_values)

    @cached_property
    def restricted(self) -> Mapping[str, frozenset[str]]:
        """Every resident who consented to some items only, with those items."""
        if not self.changed:
            return self.base_restricted
        return {**{k: v for k, v in self.base_restricted.items() if k not in self.changed},
                **self.changed_restricted}

    @cached_property
    def subjects(self) -> frozenset[str]:
        """Every resident who may be sent (the same object while nothing changed)."""
        if not self.changed and not self.base_restricted:
            return self.base_full
        return (self.base_full - self.changed) | self.full_extra | frozenset(self.restricted)

    def allows(self, subject: str) -> bool:
        return subject in self.subjects

    def items(self, subject: str) -> frozenset[str] | None:
        """The items ``subject`` consented to; None = all items (check ``allows`` first)."""
        return self.restricted.get(subject)

    def covering(self, items: frozenset[str]) -> frozenset[str]:
        """Residents whose consent covers every item in ``items``."""
        partial = frozenset(s for s, its in self.restricted.items() if items <= its)
        if not partial and not self.changed:
            return self.base_full
        return (self.base_full - self.changed) | self.full_extra | partial


def _fold(rows: Iterable[Sequence[Any]]) -> tuple[list[str], dict[str, frozenset[str]]]:
    full: list[str] = []
    partial: dict[str, set[str]] = {}
    for resident, items_json in rows:
        if items_json is None:
            full.append(resident)
        else:
            partial.setdefault(resident, set()).update(json.loads(items_json))
    full_set = set(full)
    return full, {k: frozenset(v) for k, v in partial.items() if k not in full_set}


@dataclass
class _Entry:
    scope: ConsentScope
    seq: int
    next_expiry: str | None


class ScopeCache:
    """The newest ``ConsentScope`` per key, refreshed incrementally (see the module docstring).
    ``snapshots``: the folder of base snapshots (None: none kept)."""

    def __init__(self, db: Database, *, max_keys: int = 64, compact_after: int = 20_000,
                 snapshots: Path | None = None) -> None:
        self.db = db
        self.max_keys = max_keys
        self.compact_after = compact_after
        self.snapshots = snapshots
        self.loaded_snapshots = 0       # entries taken from a snapshot (for tests and benches)
        self._entries: OrderedDict[ScopeKey, _Entry] = OrderedDict()
        self._reader: sqlite3.Connection | None = None    # for ``current``, opened on first use
        self._reader_lock = threading.Lock()

    def current(self, key: ScopeKey) -> ConsentScope | None:
        """The cached scope of ``key`` if it is still the newest (no consent event since, no
        expiry passed), else None (then call ``get``). Synchronous, for a worker thread: one
        indexed query on this cache's own read-only connection, which sees every commit,
        whichever process made it."""
        entry = self._entries.get(key)
        now = iso(utcnow())
        if entry is None or now < entry.scope.at or (
                entry.next_expiry is not None and now >= entry.next_expiry):
            return None
        with self._reader_lock:
            try:
                if self._reader is None:
                    self._reader = read_only_connection(self.db.path, check_same_thread=False)
                row = self._reader.execute("SELECT MAX(seq) FROM consent_events").fetchone()
            except sqlite3.Error:     # ``get`` reads through the store's own connection and
                return None           # reports what is wrong
        return entry.scope if (row[0] or 0) == entry.seq else None

    def close(self) -> None:
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    async def get(self, key: ScopeKey, at: str | None = None) -> ConsentScope:
        if at is not None:  # a past or future moment: answered exactly, not cached
            return await asyncio.to_thread(ConsentScope.build, await self._rows(key, at), at)
        now = iso(utcnow())
        seq = await self._seq()  # read before the data: a change in between shows next time
        entry = self._entries.get(key)
        if entry is None and self.snapshots is not None:  # a restart: the last full read
            entry = await asyncio.to_thread(self._load_snapshot, key)
            if entry is not None:
                self.loaded_snapshots += 1
                self._remember(key, entry)
        if entry is not None and now >= entry.scope.at:
            self._entries.move_to_end(key)
            if seq == entry.seq and (entry.next_expiry is None or now < entry.next_expiry):
                return entry.scope
            touched = await self._touched(key, entry, now)
            if len(touched) + len(entry.scope.changed) <= self.compact_after:
                scope = entry.scope.updated(touched, await self._rows(key, now, touched), now)
                self._remember(key, _Entry(scope, seq, await self._next_expiry(key, now)))
                return scope
        # a full read: up to one row per consenting resident, read and folded off the event
        # loop, and kept as this key's snapshot
        entry = await asyncio.to_thread(self._read_full, key, now)
        self._remember(key, entry)
        return entry.scope

    def _remember(self, key: ScopeKey, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def _connect(self) -> sqlite3.Connection:
        """A read-only connection of this thread's own (full reads take a while: the one of
        ``current`` stays free for the transfers' per-batch checks)."""
        return read_only_connection(self.db.path)

    def _read_full(self, key: ScopeKey, now: str) -> _Entry:
        """Every valid consent of ``key`` at ``now``, in one read transaction; in a worker
        thread. Leaves the snapshot (best effort: a snapshot that cannot be written is logged)."""
        where, params = key.where()
        con = self._connect()
        try:
            con.execute("BEGIN")
            seq = con.execute("SELECT MAX(seq) FROM consent_events").fetchone()[0] or 0
            event = con.execute("SELECT consent_id, recorded_at FROM consent_events "
                                "WHERE seq = ?", (seq,)).fetchone()
            rows = con.execute(f"SELECT resident, items_json FROM consents WHERE {where} "
                               f"AND {_VALID_AT}", [*params, now, now, now]).fetchall()
            expiry = con.execute(_NEXT_EXPIRY.format(where=where), [*params, now]).fetchone()
            con.execute("COMMIT")
        finally:
            con.close()
        entry = _Entry(ConsentScope.build(rows, now), seq, expiry[0] if expiry else None)
        if self.snapshots is not None and event is not None:
            try:
                _write_snapshot(self.snapshots, key, entry, event)
            except OSError as exc:
                log.warning("consent scope snapshot not written: %s", exc)
        return entry

    def _load_snapshot(self, key: ScopeKey) -> _Entry | None:
        """The entry the snapshot of ``key`` holds, if it is there and still belongs to this
        consent database; in a worker thread. Its next expiry is the next after the snapshot's
        time, so expiries passed since are re-read as changes."""
        assert self.snapshots is not None
        path = _snapshot_path(self.snapshots, key)
        if not path.exists():
            return None
        try:
            snap = _read_snapshot(path, key)
        except Exception as exc:  # any unreadable snapshot: read the key in full
            log.warning("consent scope snapshot %s ignored: %s", path.name, exc)
            return None
        if snap is None:
            return None
        scope, seq, event = snap
        where, params = key.where()
        con = self._connect()
        try:
            con.execute("BEGIN")
            found = con.execute("SELECT consent_id, recorded_at FROM consent_events "
                                "WHERE seq = ?", (seq,)).fetchone()
            expiry = con.execute(_NEXT_EXPIRY.format(where=where),
                                 [*params, scope.at]).fetchone()
            con.execute("COMMIT")
        finally:
            con.close()
        if found is None or tuple(found) != event:
            log.info("consent scope snapshot %s is of another consent database: ignored",
                     path.name)
            return None
        return _Entry(scope, seq, expiry[0] if expiry else None)

    async def _seq(self) -> int:
        # once per batch: one round trip to the database thread (execute, fetch and close in one)
        rows = await self.db.conn.execute_fetchall("SELECT MAX(seq) FROM consent_events")
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    async def _rows(self, key: ScopeKey, at: str, residents: frozenset[str] | None = None
                    ) -> list[Any]:
        where, params = key.where()
        sql = f"SELECT resident, items_json FROM consents WHERE {where} AND {_VALID_AT}"
        params = [*params, at, at, at]
        if residents is not None:
            sql += " AND resident IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(residents), ensure_ascii=False))
        return await self.db.fetchall(sql, params)

    async def _touched(self, key: ScopeKey, entry: _Entry, now: str) -> frozenset[str]:
        """Residents with an event since the entry, or whose consent for ``key`` expired since."""
        events = await self.db.fetchall(  # no DISTINCT: it would scan an index, not the seq range
            "SELECT resident FROM consent_events WHERE seq > ?", (entry.seq,))
        where, params = key.where()
        expired = await self.db.fetchall(
            "SELECT resident FROM consents INDEXED BY consents_key_expiry WHERE "
            f"{where} AND expires_at > ? AND expires_at <= ?", [*params, entry.scope.at, now])
        return frozenset(r[0] for r in events) | frozenset(r[0] for r in expired)

    async def _next_expiry(self, key: ScopeKey, now: str) -> str | None:
        where, params = key.where()
        row = await self.db.fetchone(_NEXT_EXPIRY.format(where=where), [*params, now])
        return row[0] if row else None


_NEXT_EXPIRY = ("SELECT expires_at FROM consents INDEXED BY consents_key_expiry WHERE "
                "{where} AND withdrawn_at IS NULL AND expires_at > ? ORDER BY expires_at LIMIT 1")


def _snapshot_path(folder: Path, key: ScopeKey) -> Path:
    name = hashlib.sha256(json.dumps(_key_json(key), ensure_ascii=False).encode()).hexdigest()
    return folder / f"{name[:32]}.arrow"


def _key_json(key: ScopeKey) -> list[str]:
    return [key.dataset_id, key.participant, key.purpose, key.service, key.component]


def _digest(*arrays: Any) -> str:
    """SHA-256 over the arrays' buffers (arrays built whole, offset 0)."""
    h = hashlib.sha256()
    for array in arrays:
        for buf in array.buffers():
            h.update(b"-" if buf is None else buf)
    return h.hexdigest()


def _write_snapshot(folder: Path, key: ScopeKey, entry: _Entry, event: Sequence[Any]) -> None:
    """The base of ``entry``'s scope as an Arrow IPC file, written whole then renamed."""
    import pyarrow as pa

    scope = entry.scope
    residents = pa.array([*scope.base_full, *scope.base_restricted], pa.string())
    items = pa.array([None] * len(scope.base_full)
                     + [json.dumps(sorted(v), ensure_ascii=False)
                        for v in scope.base_restricted.values()], pa.string())
    meta = {"format": _SNAPSHOT_FORMAT, "key": json.dumps(_key_json(key), ensure_ascii=False),
            "seq": str(entry.seq), "at": scope.at, "event_id": event[0], "event_at": event[1],
            "digest": _digest(residents, items)}
    table = pa.table({"resident": residents, "items": items}).replace_schema_metadata(meta)
    folder.mkdir(parents=True, exist_ok=True)
    path = _snapshot_path(folder, key)
    part = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with pa.OSFile(str(part), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def _read_snapshot(path: Path, key: ScopeKey
                   ) -> tuple[ConsentScope, int, tuple[str, str]] | None:
    """(scope base, seq, (event id, recorded at)) from a snapshot file; None if it is of
    another key or format, or its content does not match its digest."""
    import pyarrow as pa

    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("format") != _SNAPSHOT_FORMAT or meta.get("key") != json.dumps(
            _key_json(key), ensure_ascii=False):
        return None
    residents = table.column("resident").combine_chunks()
    items = table.column("items").combine_chunks()
    if _digest(residents, items) != meta.get("digest"):
        log.warning("consent scope snapshot %s does not match its digest: ignored", path.name)
        return None
    names = residents.to_pylist()
    full_count = items.null_count
    restricted = {r: frozenset(json.loads(i)) for r, i in
                  zip(names[full_count:], items.slice(full_count).to_pylist(), strict=True)}
    full = frozenset(names[:full_count])
    # the filter's index takes the array as it is: all-items residents (in any order) first,
    # then the some-items ones in ``restricted``'s order
    whole = len(full) == full_count and len(restricted) == len(names) - full_count
    scope = ConsentScope(meta["at"], full, restricted, base_values=residents if whole else None)
    return scope, int(meta["seq"]), (meta["event_id"], meta["event_at"])
