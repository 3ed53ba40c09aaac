"""The flow ledger's residents' index: whose records each entry lists, for residents' queries.

``flow_index`` (subject, seq, records) has a row per resident per batch entry (one resident
listed twice in an entry has one row with the sum); ``subject_index`` (subject, seq) does the
same for the resident entries of ledgers from before schema version 2. ``FLOWS_OF`` reads one
resident's flows from both as full entries.

The index is derived data, filled in bulk and in subject order by ``fill`` rather than on every
append: an index updated per append takes random inserts all over a large B-tree, and decoding
the resident lists belongs off the transfer path. ``fill`` works in transactions of about
``CHUNK`` residents, so a transfer appending meanwhile waits for one of them at most.

A transfer's appends come first: ``fill`` waits, before each of its transactions, while a
transfer batch is being appended to the same ledger in this process (``appending``), and the
fill a checkpoint asks for (``defer``) waits until no batch has been appended for that long —
the transfer streaming meanwhile would otherwise wait for a chunk at nearly every batch, its
appends losing the database's write lock to the next chunk again and again (up to
``MAX_DEFER`` seconds, after which it goes on a chunk at a time between batches).

``check`` (part of ``SqliteLedger.verify``) holds the index to exactly the residents the
indexed entries list — no row missing, added or altered — by comparing an order-free keyed
fingerprint (BLAKE2b with a fresh random key per check, summed) of the index rows with one of
the pairs decoded from the entries, without sorting or holding either in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mesh.db import Database
from mesh.ledger_verify import VerifyReport, decode_subjects

CHUNK = 50_000                   # residents indexed per transaction, about
FLOWS_OF = (
    "SELECT e.seq AS seq, b.time AS time, si.subject AS subject, b.dataset AS dataset, "
    "b.from_participant AS from_participant, b.from_node AS from_node, "
    "b.to_participant AS to_participant, b.to_node AS to_node, b.purpose AS purpose, "
    "b.agreement AS agreement, b.service AS service, b.component AS component, "
    "b.transfer AS transfer, e.records AS records, e.prev_hash AS prev_hash, e.hash AS hash "
    "FROM subject_index si JOIN entries e ON e.seq = si.seq LEFT JOIN batches b "
    "ON b.id = e.batch WHERE si.subject = ? UNION ALL "
    "SELECT f.seq, f.time, fi.subject, f.dataset, f.from_participant, f.from_node, "
    "f.to_participant, f.to_node, f.purpose, f.agreement, f.service, f.component, f.transfer, "
    "fi.records, f.prev_hash, f.hash FROM flow_index fi JOIN flow_entries f ON f.seq = fi.seq "
    "WHERE fi.subject = ? ORDER BY seq")
_UPTO = "SELECT value FROM ledger_state WHERE key = 'indexed_upto'"
_HEAD = "SELECT MAX(seq) FROM (SELECT MAX(seq) AS seq FROM flow_entries UNION ALL " \
        "SELECT MAX(seq) FROM entries)"


MAX_DEFER = 120.0                # seconds a deferred fill waits for transfers at most
_appends: dict[Path, list[float]] = {}   # ledger file → [appends under way, last one's end]
_appends_lock = threading.Lock()


@contextlib.contextmanager
def appending(path: Path) -> Iterator[None]:
    """Around a transfer batch's append to the ledger at ``path`` (any thread): ``fill`` gives
    way to it."""
    with _appends_lock:
        state = _appends.setdefault(path, [0, 0.0])
        state[0] += 1
    try:
        yield
    finally:
        with _appends_lock:
            state[0] -= 1
            state[1] = time.monotonic()


async def _give_way(path: Path, defer: float, since: float) -> None:
    """Wait while an append to ``path`` is under way, and, with ``defer``, until none has been
    made for ``defer`` seconds (not past ``MAX_DEFER`` after ``since``)."""
    while True:
        with _appends_lock:
            busy, last = _appends.get(path, (0, 0.0))
        now = time.monotonic()
        quiet = defer if now - since < MAX_DEFER else 0.0
        if not busy and now - last >= quiet:
            return
        await asyncio.sleep(0.01 if busy else max(0.01, quiet - (now - last)))


def index_rows(blobs: Iterable[Sequence[Any]]) -> list[tuple[str, int, int]]:
    """``(subject, seq, records)`` for the ``(seq, encoded list)`` of batch entries, one per
    resident per entry, sorted by subject. A damaged list adds nothing (``verify`` reports it)."""
    rows: list[tuple[str, int, int]] = []
    for seq, blob in blobs:
        try:
            subjects, records = decode_subjects(blob)
        except (ValueError, UnicodeDecodeError, TypeError):
            continue
        if len(set(subjects)) == len(subjects):
            rows += zip(subjects, [seq] * len(subjects), records, strict=True)
        else:
            summed: dict[str, int] = {}
            for s, n in zip(subjects, records, strict=True):
                summed[s] = summed.get(s, 0) + n
            rows += ((s, seq, n) for s, n in summed.items())
    rows.sort()
    return rows


async def fill(db: Database, lock: asyncio.Lock, *, defer: float = 0.0) -> int:
    """Index every entry past ``indexed_upto``; returns the rows added. ``lock``: the ledger's
    write lock, taken per transaction. ``defer``: wait for transfers to pause this long (see
    the module docstring)."""
    added = 0
    path, since = db.path.resolve(), time.monotonic()
    while True:
        await _give_way(path, defer, since)
        async with lock, db.transaction() as conn:
            async with conn.execute(_UPTO) as cur:
                row = await cur.fetchone()
            upto = row[0] if row else 0
            async with conn.execute("SELECT seq, residents FROM flow_entries WHERE seq > ? "
                                    "ORDER BY seq LIMIT 5000", (upto,)) as cur:
                sizes = await cur.fetchall()
            last, total = 0, 0
            for seq, n in sizes:
                if last and total + n > CHUNK:
                    break
                last, total = seq, total + n
            if len(sizes) < 5000 and (not sizes or last == sizes[-1][0]):
                async with conn.execute(_HEAD) as cur:          # to the head: older entries too
                    last = max(last, (await cur.fetchone())[0] or 0)
            if last <= upto:
                return added
            cur = await conn.execute(
                "INSERT OR IGNORE INTO subject_index SELECT subject, seq FROM entries "
                "WHERE seq > ? AND seq <= ? ORDER BY subject, seq", (upto, last))
            added += max(cur.rowcount, 0)
            async with conn.execute("SELECT seq, subjects FROM flow_entries WHERE seq > ? AND "
                                    "seq <= ?", (upto, last)) as cur:
                blobs = await cur.fetchall()
            rows = await asyncio.to_thread(index_rows, blobs)
            cur = await conn.executemany("INSERT OR IGNORE INTO flow_index VALUES (?, ?, ?)", rows)
            added += max(cur.rowcount, 0)
            await conn.execute("INSERT INTO ledger_state VALUES ('indexed_upto', ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (last,))


def _fingerprint(key: bytes, rows: Iterable[Sequence[Any]]) -> tuple[int, int]:
    """``(rows, sum of keyed hashes)`` of ``(subject, seq, records)`` rows, in any order."""
    count = total = 0
    for subject, seq, records in rows:
        text = f"{seq}\x1f{records}\x1f{subject}".encode("utf-8", "surrogatepass")
        total += int.from_bytes(hashlib.blake2b(text, key=key, digest_size=16).digest(), "little")
        count += 1
    return count, total


async def check(db: Database, report: VerifyReport) -> VerifyReport:
    """``report``, or an ``index_inconsistent`` one when the index does not list exactly the
    residents of the indexed entries (it is derived, but residents read their flows through it)."""
    row = await db.fetchone(_UPTO)
    upto = row[0] if row else 0
    legacy = await db.fetchone(
        "SELECT (SELECT COUNT(*) FROM subject_index), (SELECT COUNT(*) FROM subject_index si "
        "JOIN entries e ON e.seq = si.seq AND e.subject = si.subject), (SELECT COUNT(*) FROM "
        "entries WHERE seq <= ?)", (upto,))
    key = os.urandom(16)
    expected = (0, 0)
    after = 0
    while True:
        blobs = await db.fetchall("SELECT seq, subjects FROM flow_entries WHERE seq > ? AND "
                                  "seq <= ? ORDER BY seq LIMIT 64", (after, upto))
        if not blobs:
            break
        part = await asyncio.to_thread(lambda b=blobs: _fingerprint(key, index_rows(b)))
        expected = (expected[0] + part[0], expected[1] + part[1])
        after = blobs[-1][0]
    actual = (0, 0)
    async with db.conn.execute("SELECT subject, seq, records FROM flow_index") as cur:
        cur.arraysize = 20_000
        while rows := await cur.fetchmany(20_000):
            part = await asyncio.to_thread(_fingerprint, key, rows)
            actual = (actual[0] + part[0], actual[1] + part[1])
    if legacy[0] == legacy[1] == legacy[2] and expected == actual:
        return report
    listed = legacy[0] + actual[0]
    return dataclasses.replace(
        report, ok=False, reason="index_inconsistent",
        message=f"the residents' index lists {listed} flows, not exactly the {legacy[2] + expected[0]}"
                " flows of the indexed entries: residents would see wrong flows; the chain itself "
                "verified",
        message_ja="住民向けの索引が台帳と一致しません（台帳の連鎖自体は正常）")
