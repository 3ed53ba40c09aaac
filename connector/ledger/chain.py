"""SqliteLedger: the personal-data flow ledger in ``DATA_DIR/ledger.db`` (DESIGN §8; 5-2, 5-4).

Every personal-data transfer batch appends one **batch entry** to a hash chain, before the
batch goes out, in one transaction: what its residents share — time, dataset, from
(participant, node), to (participant, node), purpose, agreement, service/component when the
consumer named them, transfer id — how many residents and records, and the ``[subject,
records]`` pair of every resident whose records went out, covered by ``subjects_digest``, one
SHA-256 over a compact encoding of the pairs (``mesh.ledger_verify`` defines it, the hashes and
the checks). A batch of more than ``MAX_RESIDENTS`` residents (or ``MAX_SUBJECT_BYTES`` of their
ids) takes several entries. ``seq`` is
the position in the chain.

Why per batch: the former model (one chained entry per resident per batch: a canonical-JSON
SHA-256 and a row each) made the ledger eight times the cost of the rest of a transfer's
per-batch work (``bench/bench_consent.py``). Now a batch costs one SHA-256 over ~12 bytes per
resident, built from the filter's Arrow arrays without a Python object per resident
(``residents.py``), and one row. Nothing a resident or auditor sees is lost: each resident's
flow still reads as a full entry — subject, records and every shared field — through the
residents' index (``index.py``: ``entries_for``, ``flows_for``, the resident portal), an export
lists every pair, and a changed, added, removed or moved pair breaks the digest (``modified``).

Ledgers written before schema version 2 hold resident entries (one per resident per batch).
They are not rewritten — re-hashing would break the checkpoints the registry holds — but kept:
migration 2 only adds tables, old entries keep verifying and being read, and the first batch
entry chains on after the last of them (``schema.py``).

Triggers refuse UPDATE and DELETE of entries. They stop mistakes, not an attacker with the file:
``verify`` does, and signed checkpoints (``checkpoint.py``) held by the registry catch a chain
that was cut short or rewritten and re-hashed in full.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from connector.ledger import index
from connector.ledger.checkpoint import CheckpointRow, SignedCheckpoint, table_problems
from connector.ledger.export import write_ndjson
from connector.ledger.schema import MIGRATIONS, TRIGGERS
from connector.ledger.verify import GENESIS, VerifyReport, verify_chain
from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.db import Database
from mesh.errors import AreameshError, InvalidRequest, NotFound
from mesh.keystore import NodeKeyStore
from mesh.ledger_verify import (
    MAX_RECORDS,
    MAX_RESIDENTS,
    MAX_SUBJECT_BYTES,
    SHARED,
    decode_subjects,
    encode_subjects,
    entry_hash,
    subjects_digest,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

__all__ = ["MIGRATIONS", "TRIGGERS", "Appended", "Flow", "FlowBatch", "FlowSummary",
           "LedgerUnreadable", "SqliteLedger"]

_META = SHARED[1:]                        # FlowBatch's fields (all shared fields but time)
_FIELDS = ("seq", "time", "subject", "dataset", "from_participant", "from_node", "to_participant",
           "to_node", "purpose", "agreement", "service", "component", "transfer", "records",
           "prev_hash", "hash")           # a resident entry, and one resident's flow as read
_BATCH = ("seq", *SHARED, "residents", "records", "subjects_digest", "prev_hash", "hash")
_LEGACY = ("SELECT e.seq, b.time, e.subject, " + ", ".join(f"b.{k}" for k in _FIELDS[3:13])
           + ", e.records, e.prev_hash, e.hash FROM entries e LEFT JOIN batches b "
           "ON b.id = e.batch")
_HEAD = ("SELECT seq, hash FROM (SELECT seq, hash FROM flow_entries ORDER BY seq DESC LIMIT 1) "
         "UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM entries ORDER BY seq DESC "
         "LIMIT 1) ORDER BY seq DESC LIMIT 1")
# Insert only while the head is still the one the entry chains on (NULL: an empty ledger), and
# say so: one round trip where a SELECT of the head and an INSERT would take two.
_INSERT = (f"INSERT INTO flow_entries({', '.join(_BATCH[:-1])}, subjects, hash) "
           f"SELECT {', '.join('?' * (len(_BATCH) + 1))} "
           f"WHERE (SELECT seq || ' ' || hash FROM ({_HEAD})) IS ? RETURNING seq")
_REQUIRED = ("dataset", "from_participant", "from_node", "to_participant", "to_node", "purpose",
             "agreement")
CHECKPOINT_DEFER = 1.0                    # s without a transfer batch before a checkpoint
                                          # fills the residents' index (``index.py``)
PAGE = 5000                               # resident entries per read
PAGE_BATCHES = 64                         # batch entries per read (each up to MAX_RESIDENTS)


class LedgerUnreadable(AreameshError):
    """The ledger file is not a readable SQLite database (truncated, garbled, wrong file)."""

    code = "ledger_unreadable"
    local = True


@dataclass(frozen=True)
class FlowBatch:
    """What every resident of one transfer batch shares (``append_batch``)."""

    dataset: str
    from_participant: str
    from_node: str
    to_participant: str
    to_node: str
    purpose: str
    agreement: str
    service: str | None = None
    component: str | None = None
    transfer: str | None = None


@dataclass(frozen=True)
class Flow:
    """One resident's records in one transfer batch (the input of ``append_many``)."""

    subject: str
    dataset: str
    from_participant: str
    from_node: str
    to_participant: str
    to_node: str
    purpose: str
    agreement: str
    records: int
    service: str | None = None
    component: str | None = None
    transfer: str | None = None


@dataclass(frozen=True)
class Appended:
    first_seq: int
    last_seq: int
    head: str


@dataclass(frozen=True)
class FlowSummary:
    """Where one resident's data went: per recipient, dataset, purpose and agreement."""

    to_participant: str
    to_node: str
    dataset: str
    purpose: str
    agreement: str
    service: str | None
    component: str | None
    first_at: str
    last_at: str
    records: int
    entries: int              # ledger entries that list the resident

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _unreadable(path: Path, exc: Exception) -> LedgerUnreadable:
    why = "; ".join(str(exc).splitlines()[:4])
    return LedgerUnreadable(f"{path} is not a readable ledger database ({why}): the file was "
                            "truncated, garbled or replaced; restore it from a backup and verify "
                            "against the registry's checkpoints",
                            message_ja=f"台帳ファイル {path} を読めません（切り詰め・破損・置換の可能性）",
                            details={"path": str(path), "sqlite": str(exc)})


# (meta, encoded list, residents, records): one batch entry, before it is chained
_Part = tuple["FlowBatch", bytes, int, int]


class SqliteLedger:
    """The hash-chained flow ledger of one connector."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._head: tuple[int, str] | None = None   # after this object's last append; None:
                                                    # read it (another writer may have appended)
        # Every write of this object takes the lock, so a one-statement append (an implicit
        # transaction of its own) never runs inside another's open transaction on the connection.
        self._lock = asyncio.Lock()
        # ``append_batch_blocking``: a writer connection of its own, used from worker threads
        self._writer: sqlite3.Connection | None = None
        self._writer_head: tuple[int, str] | None = None
        self._writer_lock = threading.Lock()
        self._path = db.path.resolve()

    @classmethod
    async def open(cls, data_dir: Path, *, create: bool = True) -> SqliteLedger:
        path = data_dir / "ledger.db"
        if not create and not path.exists():
            raise NotFound(f"no flow ledger at {path}", message_ja=f"{path} に台帳がありません",
                           code="no_ledger")
        db = Database(path, MIGRATIONS, synchronous="FULL")
        try:
            if path.exists():
                await asyncio.to_thread(_readable, path)
            await db.open()
            for statement in TRIGGERS:
                await db.conn.execute(statement)
            # filling the residents' index merges into a large B-tree: keep its pages in memory
            await db.conn.execute("PRAGMA cache_size = -65536")
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise _unreadable(path, exc) from None
        return cls(db)

    async def close(self) -> None:
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        await self.db.close()

    async def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last entry; ``(0, GENESIS)`` when empty."""
        row = await self.db.fetchone(_HEAD)
        return (row[0], row[1]) if row else (0, GENESIS)

    # ---- appending -----------------------------------------------------------------------------
    async def append_batch(self, batch: FlowBatch, subjects: Sequence[str] | pa.Array,
                           records: Sequence[int] | np.ndarray) -> Appended:
        """The entry of one transfer batch: ``subjects`` (a list, or an Arrow string array as the
        consent filter gives it) with ``records`` of each, chained after the current head in
        one transaction (several entries past ``MAX_RESIDENTS`` residents; none for none)."""
        with index.appending(self._path):
            return await self._append([(batch, subjects, records)])

    def append_batch_blocking(self, batch: FlowBatch, subjects: pa.Array,
                              records: np.ndarray) -> Appended:
        """``append_batch`` from a worker thread, synchronously: the entry is stored and synced
        (``synchronous=FULL``) when this returns. A transfer filters, encodes and records each
        batch in one trip to a worker thread this way, instead of a trip to the database's
        thread besides; on a busy machine every trip waits for a core.

        It writes through a connection of its own (opened on first use), so it never runs
        inside a transaction of the async connection; SQLite's lock orders the two writers, and
        the entry is inserted only while the head is still the one it chains on (else the head
        is read again inside a write transaction), as ``append_batch`` does."""
        parts = _encode([(batch, subjects, records)])
        time = iso(utcnow())
        with index.appending(self._path), self._writer_lock:
            conn = self._writer
            if conn is None:
                conn = sqlite3.connect(self.db.path, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute(f"PRAGMA synchronous={self.db.synchronous}")
                self._writer = conn
            head, self._writer_head = self._writer_head, None
            if len(parts) == 1 and head is not None:
                rows = _chained(parts, time, *head)
                if conn.execute(_INSERT, (*rows[0], _expected(*head))).fetchall():
                    self._writer_head = (rows[0][0], rows[0][-1])
                    return Appended(head[0] + 1, *self._writer_head)
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute(_HEAD).fetchall()
                head = (found[0][0], found[0][1]) if found else (0, GENESIS)
                rows = _chained(parts, time, *head)
                for row, before in zip(rows, [head, *((r[0], r[-1]) for r in rows)],
                                       strict=False):
                    if not conn.execute(_INSERT, (*row, _expected(*before))).fetchall():
                        raise RuntimeError("the ledger's head moved inside a write transaction")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._writer_head = (rows[-1][0], rows[-1][-1]) if rows else head
            return Appended(head[0] + 1, *self._writer_head)

    async def append_many(self, flows: Iterable[Flow]) -> Appended:
        """Append ``flows`` in one transaction: one batch entry per run of equal batch fields."""
        groups: list[tuple[FlowBatch, list[str], list[int]]] = []
        for f in flows:
            meta = FlowBatch(*(getattr(f, k) for k in _META))
            if not groups or groups[-1][0] != meta:
                groups.append((meta, [], []))
            groups[-1][1].append(f.subject)
            groups[-1][2].append(f.records)
        return await self._append(groups)

    async def _append(self, groups: Sequence[tuple[FlowBatch, Any, Any]]) -> Appended:
        if all(_is_arrow(subjects) for _, subjects, _ in groups):
            parts = _encode(groups)      # numpy over Arrow buffers: well under a millisecond
        else:                            # a Python object per resident: off the event loop
            parts = await asyncio.to_thread(_encode, groups)
        time = iso(utcnow())
        async with self._lock:
            head, self._head = self._head, None       # unknown until the entries are stored
            if len(parts) == 1 and head is not None:
                # the common case, a transfer batch: one INSERT, atomic and durable on its own
                # (autocommit, synchronous=FULL), that checks the head it chains on
                rows = _chained(parts, time, *head)
                if await self.db.conn.execute_fetchall(_INSERT, (*rows[0], _expected(*head))):
                    self._head = (rows[0][0], rows[0][-1])
                    return Appended(head[0] + 1, *self._head)
            async with self.db.transaction() as conn:
                head = await _read_head(conn)         # the write lock is ours from here on
                rows = _chained(parts, time, *head)
                for row, before in zip(rows, [head, *((r[0], r[-1]) for r in rows)],
                                       strict=False):
                    if not await conn.execute_fetchall(_INSERT, (*row, _expected(*before))):
                        raise RuntimeError("the ledger's head moved inside a write transaction")
            self._head = (rows[-1][0], rows[-1][-1]) if rows else head
        return Appended(head[0] + 1, *self._head)

    # ---- reading -------------------------------------------------------------------------------
    async def entries(self, *, after: int = 0) -> AsyncIterator[dict[str, Any]]:
        """Every entry with ``seq > after`` in seq order, all its fields (a batch entry with its
        ``subjects`` pairs; a resident entry of an older ledger as it was written). Paged."""
        async for entry in self._chain(after, decode=True):
            yield entry

    async def _chain(self, after: int, *, decode: bool) -> AsyncIterator[dict[str, Any]]:
        """The chain in seq order: batch entries, merged with the resident entries of a ledger
        from before version 2 when it has any. ``decode`` false: the encoded resident list as
        stored (``subjects_blob``), for ``verify``."""
        batches = self._batch_entries(after, decode)
        if await self.db.fetchone("SELECT 1 FROM entries LIMIT 1") is None:
            async for entry in batches:
                yield entry
            return
        legacy = self._resident_entries(after)
        a, b = await anext(legacy, None), await anext(batches, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a["seq"] <= b["seq"]):
                yield a
                a = await anext(legacy, None)
            else:
                yield b
                b = await anext(batches, None)

    async def _batch_entries(self, after: int, decode: bool) -> AsyncIterator[dict[str, Any]]:
        while True:
            rows = await self.db.fetchall(
                f"SELECT {', '.join(_BATCH)}, subjects FROM flow_entries WHERE seq > ? "
                "ORDER BY seq LIMIT ?", (after, PAGE_BATCHES))
            for r in rows:
                entry = dict(zip(_BATCH, r, strict=False))
                if decode:
                    entry["subjects"] = await asyncio.to_thread(_pairs, r[-1])
                else:
                    entry["subjects_blob"] = r[-1]
                yield entry
            if len(rows) < PAGE_BATCHES:
                return
            after = rows[-1][0]

    async def _resident_entries(self, after: int) -> AsyncIterator[dict[str, Any]]:
        while True:
            rows = await self.db.fetchall(f"{_LEGACY} WHERE e.seq > ? ORDER BY e.seq LIMIT ?",
                                          (after, PAGE))
            for r in rows:
                yield dict(zip(_FIELDS, r, strict=True))
            if len(rows) < PAGE:
                return
            after = rows[-1][0]

    async def index_subjects(self, *, defer: float = 0.0) -> int:
        """Bring the residents' index up to the head; returns the residents' flows added.
        Called by ``flows_for``, ``entries_for`` and ``checkpoint``; call it after a transfer
        too (it works in short transactions and gives way to transfer batches being appended;
        ``defer``: waits until transfers pause that long, see ``index.py``)."""
        return await index.fill(self.db, self._lock, defer=defer)

    async def merge_index(self, *, defer: float = 0.0) -> int:
        """Merge the residents' index's runs where ``FAN_IN`` are of one size (``index.py``);
        returns the rows moved. The maintenance loop calls it after each checkpoint."""
        return await index.merge(self.db, self._lock, defer=defer)

    async def entries_for(self, subject: str) -> list[dict[str, Any]]:
        """``subject``'s flows, oldest first, each a full entry: seq, time, subject, dataset,
        from, to, purpose, agreement, service, component, transfer, records (the resident's),
        and the ``prev_hash`` and ``hash`` of the ledger entry that lists them."""
        await self.index_subjects()
        rows = await self.db.fetchall(index.FLOWS_OF, (subject, subject))
        return [dict(zip(_FIELDS, r, strict=True)) for r in rows]

    async def flows_for(self, subject: str) -> list[FlowSummary]:
        """Where ``subject``'s data went (5-4): recipient, dataset, purpose, agreement, when."""
        if not isinstance(subject, str) or not subject:
            raise InvalidRequest("a subject (resident id) is required", code="invalid_resident",
                                 message_ja="住民IDを指定してください")
        await self.index_subjects()
        rows = await self.db.fetchall(
            "SELECT to_participant, to_node, dataset, purpose, agreement, service, component, "
            f"MIN(time), MAX(time), SUM(records), COUNT(*) FROM ({index.FLOWS_OF}) "
            "GROUP BY to_participant, to_node, dataset, purpose, agreement, service, component "
            "ORDER BY MIN(time), MIN(seq)", (subject, subject))
        return [FlowSummary(*r) for r in rows]

    # ---- checkpoints ---------------------------------------------------------------------------
    async def checkpoint(self, keystore: NodeKeyStore) -> SignedCheckpoint:
        """Sign the current head with the node key and keep the checkpoint. The residents'
        index is brought up to date first, once transfers pause (``CHECKPOINT_DEFER``)."""
        await self.index_subjects(defer=CHECKPOINT_DEFER)
        seq, head = await self.head()
        signed = SignedCheckpoint.sign(keystore, seq, head)
        async with self._lock, self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO checkpoints(seq, head, time, signed_json) VALUES (?, ?, ?, ?)",
                (seq, head, signed.checkpoint.time,
                 canonical_json(signed.to_json()).decode()))
        return signed

    async def checkpoint_if_changed(self, keystore: NodeKeyStore) -> SignedCheckpoint | None:
        """A new checkpoint when entries were appended since the last one, else None."""
        seq, _ = await self.head()
        last = await self.db.fetchone("SELECT MAX(seq) FROM checkpoints")
        if last and last[0] is not None and last[0] == seq:
            return None
        return await self.checkpoint(keystore)

    async def checkpoints(self, *, unpublished: bool = False) -> list[SignedCheckpoint]:
        """Stored checkpoints, oldest first (only those not yet sent to the registry)."""
        sql = "SELECT signed_json FROM checkpoints"
        if unpublished:
            sql += " WHERE published_at IS NULL"
        rows = await self.db.fetchall(sql + " ORDER BY id")
        return [SignedCheckpoint.from_json(json.loads(r[0])) for r in rows]

    async def mark_published(self, signed: SignedCheckpoint) -> None:
        """Record that the registry accepted ``signed``."""
        async with self._lock, self.db.transaction() as conn:
            await conn.execute(
                "UPDATE checkpoints SET published_at = ? WHERE seq = ? AND head = ? AND time = ? "
                "AND published_at IS NULL", (iso(utcnow()), signed.checkpoint.seq,
                                             signed.checkpoint.head, signed.checkpoint.time))

    # ---- verifying and exporting ---------------------------------------------------------------
    async def checkpoint_rows(self) -> list[CheckpointRow]:
        """The ``checkpoints`` table as stored, oldest first (``checkpoint.table_problems``)."""
        rows = await self.db.fetchall("SELECT id, seq, head, time, signed_json, published_at "
                                      "FROM checkpoints ORDER BY id")
        return [CheckpointRow(*r) for r in rows]

    async def verify(self, *, roots: list[x509.Certificate] | None = None,
                     checkpoint: SignedCheckpoint | None = None,
                     registry: SignedCheckpoint | None = None,
                     node: str | None = None) -> VerifyReport:
        """Recompute the chain and compare it with the stored checkpoints (and ``checkpoint``, a
        copy handed in, and ``registry``, the registry's newest checkpoint of this node), then
        the checkpoint table with their signed documents, this ``node`` and the registry's copy
        (``checkpoint.table_problems``: reason ``checkpoint_table_edited``), then the residents'
        index with the entries. ``roots``: check the checkpoints' signers too. Raises
        ``LedgerUnreadable`` when the file is damaged."""
        try:
            row = await self.db.fetchone("PRAGMA quick_check")
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(row[0] if row else "quick_check returned nothing")
            held = await self.checkpoints()
            held += [c for c in (checkpoint, registry) if c is not None]

            async def locate(hash_: str) -> int | None:
                found = await self.db.fetchone(
                    "SELECT seq FROM flow_entries WHERE hash = ? UNION ALL "
                    "SELECT seq FROM entries WHERE hash = ? LIMIT 1", (hash_, hash_))
                return found[0] if found else None

            report = await verify_chain(lambda: self._chain(0, decode=False), held, locate,
                                        roots=roots)
            if not report.ok:
                return report
            problems = table_problems(await self.checkpoint_rows(), node, registry)
            if problems:
                return dataclasses.replace(
                    report, ok=False, first_bad_seq=problems[0].seq,
                    reason="checkpoint_table_edited",
                    message="; ".join(p.message for p in problems),
                    message_ja="。".join(p.message_ja for p in problems))
            return await index.check(self.db, report)
        except sqlite3.DatabaseError as exc:
            raise _unreadable(self.db.path, exc) from None

    async def export(self, path: Path) -> int:
        """Write every entry as NDJSON (canonical JSON, one per line) to ``path``; returns the
        count. The file is written beside ``path`` and renamed into place when complete."""
        return await write_ndjson(self.entries(), path)


def _expected(seq: int, head: str) -> str | None:
    """What ``_INSERT`` compares the current head with (NULL for an empty ledger)."""
    return None if seq == 0 else f"{seq} {head}"


async def _read_head(conn: Any) -> tuple[int, str]:
    rows = await conn.execute_fetchall(_HEAD)
    return (rows[0][0], rows[0][1]) if rows else (0, GENESIS)


def _chained(parts: Sequence[_Part], time: str, seq: int, prev: str) -> list[tuple[Any, ...]]:
    """The rows of ``parts`` as entries chained after ``(seq, prev)``."""
    rows = []
    for meta, blob, residents, records in parts:
        seq += 1
        entry = {"time": time, **asdict(meta), "residents": residents, "records": records,
                 "subjects_digest": subjects_digest(blob), "prev_hash": prev}
        prev = entry_hash(entry)
        rows.append((seq, *entry.values(), blob, prev))
    return rows


def _readable(path: Path) -> None:
    """Raise ``sqlite3.DatabaseError`` unless ``path`` opens as SQLite (checked apart from
    ``Database.open``, which cannot close a connection whose first PRAGMA failed)."""
    con = sqlite3.connect(path)
    try:
        con.execute("PRAGMA schema_version").fetchone()
    finally:
        con.close()


def _pairs(blob: bytes) -> list[list[Any]]:
    """An entry's ``[subject, records]`` pairs as exported; none if the stored list is damaged
    (``verify`` then reports the entry as modified)."""
    try:
        subjects, records = decode_subjects(blob)
    except (ValueError, UnicodeDecodeError):
        return []
    return [[s, n] for s, n in zip(subjects, records, strict=True)]


def _is_arrow(subjects: object) -> bool:
    return type(subjects).__module__.startswith("pyarrow")


def _encode(groups: Sequence[tuple[FlowBatch, Any, Any]]) -> list[_Part]:
    """Check and encode each group's resident list, cut into entries of at most
    ``MAX_RESIDENTS`` residents and ``MAX_SUBJECT_BYTES`` of their ids."""
    parts: list[_Part] = []
    for meta, subjects, records in groups:
        bad = [k for k in _REQUIRED if not isinstance(getattr(meta, k), str) or not getattr(meta, k)]
        arrow = _is_arrow(subjects)
        if arrow:
            from connector.ledger.residents import encode_arrow, id_bytes
            sizes: Sequence[int] = id_bytes(subjects)
        else:
            sizes = [len(s.encode()) if isinstance(s, str) else 0 for s in subjects]
        for start, stop in _cuts(sizes):
            names, counts = subjects[start:stop], records[start:stop]
            if arrow:
                blob, total, problems = encode_arrow(names, counts)
            else:
                problems = _problems(names, counts)
                blob = b"" if problems else encode_subjects(names, counts)
                total = 0 if problems else sum(counts)
            bad += problems
            parts.append((meta, blob, len(names), total))
        if len(subjects) != len(records):
            bad.append("as many records counts as subjects")
        if bad:
            raise InvalidRequest(f"ledger entries are incomplete: {', '.join(dict.fromkeys(bad))}",
                                 message_ja="台帳の記録内容が不足しています",
                                 code="invalid_ledger_entry", details={"fields": bad})
    return parts


def _cuts(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each entry: up to ``MAX_RESIDENTS`` residents whose ids take up to
    ``MAX_SUBJECT_BYTES`` (at least one resident, however long its id), so that an exported
    entry stays within a line the registry's audit accepts."""
    n = len(sizes)
    if n <= MAX_RESIDENTS and int(sum(sizes) if isinstance(sizes, list) else sizes.sum()
                                  ) <= MAX_SUBJECT_BYTES:          # a usual transfer batch
        return [(0, n)] if n else []
    cumulative = [0, *(sizes.cumsum().tolist() if hasattr(sizes, "cumsum")
                       else itertools.accumulate(sizes))]
    cuts, start = [], 0
    while start < len(sizes):
        fit = bisect.bisect_right(cumulative, cumulative[start] + MAX_SUBJECT_BYTES) - 1
        stop = min(start + MAX_RESIDENTS, max(fit, start + 1))
        cuts.append((start, stop))
        start = stop
    return cuts


def _problems(subjects: Sequence[str], records: Sequence[int]) -> list[str]:
    bad = []
    if len(subjects) != len(records):
        bad.append("as many records counts as subjects")
    if not all(isinstance(s, str) and s for s in subjects):
        bad.append("subject")
    if not all(type(n) is int and 0 < n <= MAX_RECORDS for n in records):
        bad.append("records (positive integers)")
    return bad
