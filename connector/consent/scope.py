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
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database

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
                            (self.full_extra - touched) | frozenset(full), {**kept, **restricted})

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
    """The newest ``ConsentScope`` per key, refreshed incrementally (see the module docstring)."""

    def __init__(self, db: Database, *, max_keys: int = 64, compact_after: int = 20_000) -> None:
        self.db = db
        self.max_keys = max_keys
        self.compact_after = compact_after
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
                    self._reader = sqlite3.connect(f"{self.db.path.resolve().as_uri()}?mode=ro",
                                                   uri=True, check_same_thread=False)
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
        if entry is not None and now >= entry.scope.at:
            self._entries.move_to_end(key)
            if seq == entry.seq and (entry.next_expiry is None or now < entry.next_expiry):
                return entry.scope
            touched = await self._touched(key, entry, now)
            if len(touched) + len(entry.scope.changed) <= self.compact_after:
                scope = entry.scope.updated(touched, await self._rows(key, now, touched), now)
                self._remember(key, _Entry(scope, seq, await self._next_expiry(key, now)))
                return scope
        # a full read: up to one row per consenting resident, folded off the event loop
        scope = await asyncio.to_thread(ConsentScope.build, await self._rows(key, now), now)
        self._remember(key, _Entry(scope, seq, await self._next_expiry(key, now)))
        return scope

    def _remember(self, key: ScopeKey, entry: _Entry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

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
        row = await self.db.fetchone(
            "SELECT expires_at FROM consents INDEXED BY consents_key_expiry WHERE "
            f"{where} AND withdrawn_at IS NULL AND expires_at > ? ORDER BY expires_at LIMIT 1",
            [*params, now])
        return row[0] if row else None
