"""The flow ledger's residents' index: whose records each entry lists, for residents' queries.

``flow_index`` (run, subject, seq, records) has a row per resident per batch entry (one resident
listed twice in an entry has one row with the sum); ``subject_index`` (subject, seq) does the
same for the resident entries of ledgers from before schema version 2. ``FLOWS_OF`` reads one
resident's flows from both as full entries.

The index is derived data, filled in bulk and in subject order by ``fill`` rather than on every
append: an index updated per append takes random inserts all over a large B-tree, and decoding
the resident lists belongs off the transfer path. ``fill`` works in transactions of about
``CHUNK`` residents, so a transfer appending meanwhile waits for one of them at most.

Each of those transactions writes a new sorted run (schema version 3): its rows go to the end
of the B-tree, whatever its size. Inserted into one (subject, seq) tree instead, every transfer's
residents landed between the earlier ones, rewriting every page of the index: the fill's cost
grew with the whole ledger (2.8 → 6.9 CPU-s per million residents over six transfers, measured
beside this change; ``bench/README.md``). A query reads each run listed in ``flow_index_runs``
(one B-tree seek per run). ``merge`` keeps their number small: when ``FAN_IN`` runs are of one
size class (below ``CHUNK`` × ``FAN_IN``, then × ``FAN_IN`` again, …) it merges them into one, a
range of subjects per transaction; every row is in a listed run at every commit, so a query
during a merge sees each flow once. Each row is rewritten about once per size class.

A transfer's appends come first: ``fill`` and ``merge`` wait, before each of their
transactions, while a transfer batch is being appended to the same ledger in this process
(``appending``), and with ``defer`` (a checkpoint's) until no batch has been appended for that
long — the transfer streaming meanwhile would otherwise wait for a chunk at nearly every batch,
its appends losing the database's write lock to the next chunk again and again (up to
``MAX_DEFER`` seconds, after which it goes on a chunk at a time between batches).

``check`` (part of ``SqliteLedger.verify``) holds the index to exactly the residents the
indexed entries list — no row missing, added, altered or hidden in an unlisted run — by
comparing an order-free keyed fingerprint (BLAKE2b with a fresh random key per check, summed) of
the rows queries read with one of the pairs decoded from the entries, without sorting or holding
either in memory.
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

from mesh.db import Database, read_only_connection
from mesh.ledger_verify import VerifyReport

CHUNK = 50_000                   # residents indexed (or rows merged) per transaction, about
FAN_IN = 16                      # runs of one size class merged into one
_LISTED = "run IN (SELECT run FROM flow_index_runs)"
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
    f"WHERE fi.{_LISTED} AND fi.subject = ? ORDER BY seq")
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
    resident per entry, sorted by subject. A damaged list adds nothing (``verify`` reports it).
    The lists are decoded and sorted as Arrow arrays (``decode_arrow``): a Python string per
    resident is made only for the rows handed to SQLite. (numpy and pyarrow are imported here,
    in the worker thread of a fill or a verify, not when a connector starts.)"""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from connector.ledger.residents import decode_arrow

    subjects: list[Any] = []
    seqs: list[Any] = []
    records: list[Any] = []
    for seq, blob in blobs:
        try:
            names, counts = decode_arrow(blob)
        except (ValueError, TypeError):
            continue
        if pc.count_distinct(names).as_py() != len(names):   # one row per resident per entry
            summed = pa.table({"s": names, "n": counts}).group_by("s").aggregate([("n", "sum")])
            names, counts = summed["s"].combine_chunks(), summed["n_sum"].to_numpy()
        subjects.append(names)
        seqs.append(np.full(len(names), seq, np.int64))
        records.append(counts)
    if not subjects:
        return []
    table = pa.table({"subject": pa.concat_arrays(subjects), "seq": np.concatenate(seqs),
                      "records": np.concatenate(records)})
    table = table.sort_by([("subject", "ascending"), ("seq", "ascending")])  # UTF-8 bytes:
    return list(zip(table["subject"].to_pylist(), table["seq"].to_pylist(),  # SQLite's order
                    table["records"].to_pylist(), strict=True))


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
            if rows:
                run = await _new_run(conn, len(rows))
                await conn.executemany(f"INSERT INTO flow_index VALUES ({run}, ?, ?, ?)", rows)
                added += len(rows)
            await conn.execute("INSERT INTO ledger_state VALUES ('indexed_upto', ?) "
                               "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (last,))


async def _new_run(conn: Any, rows: int) -> int:
    """List a new run of ``rows`` rows; its id is above every run's, listed or not, so its rows
    go to the end of the B-tree."""
    async with conn.execute("SELECT MAX(m) FROM (SELECT MAX(run) AS m FROM flow_index_runs "
                            "UNION ALL SELECT MAX(run) FROM flow_index)") as cur:
        run = ((await cur.fetchone())[0] or 0) + 1
    await conn.execute("INSERT INTO flow_index_runs (run, rows) VALUES (?, ?)", (run, rows))
    return run


def size_class(rows: int) -> int:
    """0 below ``CHUNK`` × ``FAN_IN`` rows, 1 below that × ``FAN_IN``, and so on."""
    level, bound = 0, CHUNK * FAN_IN
    while rows >= bound:
        level, bound = level + 1, bound * FAN_IN
    return level


async def merge(db: Database, lock: asyncio.Lock, *, defer: float = 0.0) -> int:
    """Merge runs until no size class holds ``FAN_IN`` of them, finishing a merge a crash left
    half done first; returns the rows moved. ``lock`` and ``defer`` as for ``fill``."""
    moved = 0
    path, since = db.path.resolve(), time.monotonic()
    while True:
        await _give_way(path, defer, since)
        async with lock, db.transaction() as conn:
            step = await _merge_step(conn)
        if step is None:
            return moved
        moved += step


async def _merge_step(conn: Any) -> int | None:
    """One transaction of merging: start a merge, or move the next range of subjects of the one
    under way into its run (the last range also unlists the merged runs). None: nothing to do."""
    async with conn.execute("SELECT run, rows, merge_into, moved_upto FROM flow_index_runs") as cur:
        runs = await cur.fetchall()
    sources = [r for r in runs if r[2] is not None]
    if not sources:
        classes: dict[int, list[int]] = {}
        for run, rows, _, _ in runs:
            classes.setdefault(size_class(rows), []).append(run)
        full = [ids for _, ids in sorted(classes.items()) if len(ids) >= FAN_IN]
        if not full:
            return None
        target = await _new_run(conn, 0)
        await conn.execute(f"UPDATE flow_index_runs SET merge_into = ? WHERE run IN "
                           f"({','.join('?' * len(full[0]))})", (target, *full[0]))
        return 0
    target, upto = sources[0][2], sources[0][3]
    ids = [r[0] for r in sources]
    marks = ",".join("?" * len(ids))
    after = "" if upto is None else "AND subject > ?"
    since = () if upto is None else (upto,)
    # the range ends where the first of the runs reaches its share of the transaction's rows
    # (a run with fewer rows left than its share adds them all): at most CHUNK rows in all
    bound = None
    for run in ids:
        async with conn.execute(f"SELECT subject FROM flow_index WHERE run = ? {after} "
                                "ORDER BY subject LIMIT 1 OFFSET ?",
                                (run, *since, CHUNK // len(ids))) as cur:
            found = await cur.fetchone()
        if found is not None and (bound is None or found[0] < bound):
            bound = found[0]
    until = "" if bound is None else "AND subject <= ?"
    upper = () if bound is None else (bound,)
    where = f"WHERE run IN ({marks}) {after} {until}"
    cur = await conn.execute(f"INSERT INTO flow_index SELECT ?, subject, seq, records FROM "
                             f"flow_index {where} ORDER BY subject, seq",
                             (target, *ids, *since, *upper))
    moved = max(cur.rowcount, 0)
    await conn.execute(f"DELETE FROM flow_index {where}", (*ids, *since, *upper))
    await conn.execute("UPDATE flow_index_runs SET rows = rows + ? WHERE run = ?", (moved, target))
    if bound is None:
        await conn.execute("DELETE FROM flow_index_runs WHERE merge_into = ?", (target,))
    else:
        await conn.execute("UPDATE flow_index_runs SET moved_upto = ? WHERE merge_into = ?",
                           (bound, target))
    return moved


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
    residents of the indexed entries (it is derived, but residents read their flows through it).
    Everything is read in one snapshot of the file (``_counted``): a fill that commits meanwhile,
    from this process or from a running connector, is seen whole or not at all."""
    legacy, expected, actual = await asyncio.to_thread(_counted, db.path, os.urandom(16))
    if legacy[0] == legacy[1] == legacy[2] and expected == actual:
        return report
    listed = legacy[0] + actual[0]
    return dataclasses.replace(
        report, ok=False, reason="index_inconsistent",
        message=f"the residents' index lists {listed} flows, not exactly the {legacy[2] + expected[0]}"
                " flows of the indexed entries: residents would see wrong flows; the chain itself "
                "verified",
        message_ja="住民向けの索引が台帳と一致しません（台帳の連鎖自体は正常）")


def _counted(path: Path, key: bytes) -> tuple[tuple[int, int, int], tuple[int, int],
                                               tuple[int, int]]:
    """In a worker thread, through a read-only connection of its own and in one read
    transaction: the legacy index's counts (rows, rows matching their entry, entries indexed),
    and the fingerprints of the pairs the indexed entries list and of the rows queries read.
    Read piecewise outside a transaction, a fill committing between the reads made an intact
    index look tampered with (seen: 19 rows listed against the 10 of the entries read before)."""
    conn = read_only_connection(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN")
        row = conn.execute(_UPTO).fetchone()    # the first read fixes the snapshot
        upto = row[0] if row else 0
        legacy = conn.execute(
            "SELECT (SELECT COUNT(*) FROM subject_index), (SELECT COUNT(*) FROM subject_index si "
            "JOIN entries e ON e.seq = si.seq AND e.subject = si.subject), (SELECT COUNT(*) FROM "
            "entries WHERE seq <= ?)", (upto,)).fetchone()
        expected = (0, 0)
        after = 0
        while blobs := conn.execute("SELECT seq, subjects FROM flow_entries WHERE seq > ? AND "
                                    "seq <= ? ORDER BY seq LIMIT 64", (after, upto)).fetchall():
            part = _fingerprint(key, index_rows(blobs))
            expected = (expected[0] + part[0], expected[1] + part[1])
            after = blobs[-1][0]
        actual = (0, 0)
        cur = conn.execute(f"SELECT subject, seq, records FROM flow_index WHERE {_LISTED}")
        while rows := cur.fetchmany(20_000):
            part = _fingerprint(key, rows)
            actual = (actual[0] + part[0], actual[1] + part[1])
        return tuple(legacy), expected, actual
    finally:
        conn.close()
