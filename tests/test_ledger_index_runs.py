"""The residents' index in sorted runs (ledger schema version 3): each fill transaction writes a
run at the B-tree's end, ``merge`` keeps the runs few, a resident's query sees each of their
flows exactly once before, during and after a merge (and after a restart in the middle of one),
and ``verify`` holds the runs to the entries; an index of schema version 2 becomes run 1."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from connector.config import ConnectorConfig
from connector.ledger import SqliteLedger
from connector.ledger import index as ledger_index
from connector.ledger.schema import MIGRATIONS
from connector.maintenance import Maintenance
from mesh.ledger_verify import decode_subjects, encode_subjects
from registry.ca.authority import CertificateAuthority

from .test_ledger import flows, keystore_at

RESIDENTS = [f"R{i:03d}" for i in range(40)]


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path_factory.mktemp("ca") / "ca", mesh_id="t",
                                       name="運営組織")


@pytest.fixture
def small_runs(monkeypatch):
    """Runs of a few rows: fills of tens of residents make many, and merges happen."""
    monkeypatch.setattr(ledger_index, "CHUNK", 6)
    monkeypatch.setattr(ledger_index, "FAN_IN", 3)


async def _transfers(lg: SqliteLedger, rounds: int, seed: int = 7) -> dict[str, list[tuple]]:
    """``rounds`` transfers of a random part of RESIDENTS in random order, each one entry,
    indexed after each; what each resident's flows must be: (seq, records), oldest first."""
    rng = random.Random(seed)
    expected: dict[str, list[tuple]] = {r: [] for r in RESIDENTS}
    for _ in range(rounds):
        chosen = rng.sample(RESIDENTS, rng.randint(10, len(RESIDENTS)))
        done = await lg.append_many(flows(chosen))
        for i, resident in enumerate(chosen):       # flows() gives 1 + i % 3 records
            expected[resident].append((done.last_seq, 1 + i % 3))
        await lg.index_subjects()
    return expected


async def _seen(lg: SqliteLedger) -> dict[str, list[tuple]]:
    return {r: [(e["seq"], e["records"]) for e in await lg.entries_for(r)] for r in RESIDENTS}


async def _runs(lg: SqliteLedger) -> list[tuple]:
    return [tuple(r) for r in await lg.db.fetchall(
        "SELECT run, rows, merge_into, moved_upto FROM flow_index_runs ORDER BY run")]


async def _step(lg: SqliteLedger) -> int | None:
    async with lg._lock, lg.db.transaction() as conn:
        return await ledger_index._merge_step(conn)


async def test_fills_write_runs_and_merges_keep_them_few(tmp_path: Path, small_runs):
    lg = await SqliteLedger.open(tmp_path / "node")
    try:
        expected = await _transfers(lg, 12)
        before = await _runs(lg)
        assert len(before) > 3 * ledger_index.FAN_IN, before   # a run per fill transaction
        assert await _seen(lg) == expected
        moved = await lg.merge_index()
        after = await _runs(lg)
        classes = Counter(ledger_index.size_class(rows) for _, rows, _, _ in after)
        assert moved > 0 and len(after) < len(before), (before, after)
        assert max(classes.values()) < ledger_index.FAN_IN, after
        assert all(into is None for _, _, into, _ in after), after
        total = (await lg.db.fetchone("SELECT COUNT(*) FROM flow_index"))[0]
        assert sum(rows for _, rows, _, _ in after) == total == sum(map(len, expected.values()))
        assert await _seen(lg) == expected
        assert await lg.merge_index() == 0                    # nothing left to merge
        assert (await lg.verify()).ok
        # a fill after the merge goes on writing runs above every id
        await lg.append_many(flows(["R001", "R002"]))
        await lg.index_subjects()
        newest = (await _runs(lg))[-1]
        assert newest[0] > max(run for run, *_ in after) and newest[1] == 2
    finally:
        await lg.close()


async def test_a_merge_cut_off_midway_is_seen_whole_and_finished_after_a_restart(
        tmp_path: Path, small_runs):
    lg = await SqliteLedger.open(tmp_path / "node")
    expected = await _transfers(lg, 8, seed=11)
    assert await _step(lg) == 0                               # a merge starts: nothing moved
    assert await _step(lg) > 0 and await _step(lg) > 0       # two ranges of subjects moved
    under_way = [r for r in await _runs(lg) if r[2] is not None]
    assert under_way and under_way[0][3] is not None, await _runs(lg)
    target = under_way[0][2]
    moved = (await lg.db.fetchone("SELECT COUNT(*) FROM flow_index WHERE run = ?", (target,)))[0]
    left = (await lg.db.fetchone(
        f"SELECT COUNT(*) FROM flow_index WHERE run IN ({','.join(str(r[0]) for r in under_way)})"
    ))[0]
    assert moved > 0 and left > 0
    assert await _seen(lg) == expected                        # each flow once, mid-merge
    assert (await lg.verify()).ok
    await lg.close()                                          # stopped between transactions

    lg = await SqliteLedger.open(tmp_path / "node")
    try:
        assert await lg.merge_index() > 0                     # the merge under way, finished
        runs = await _runs(lg)
        assert all(into is None for _, _, into, _ in runs), runs
        assert target in [run for run, *_ in runs]
        assert max(Counter(ledger_index.size_class(n) for _, n, _, _ in runs).values()) \
            < ledger_index.FAN_IN
        assert await _seen(lg) == expected
        assert (await lg.verify()).ok
    finally:
        await lg.close()


def _as_version_2(path: Path) -> None:
    """The file as schema version 2 left it: one (subject, seq) tree, no runs."""
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE v2 (subject TEXT NOT NULL, seq INTEGER NOT NULL, records INTEGER NOT NULL, "
        "PRIMARY KEY (subject, seq)) WITHOUT ROWID; "
        "INSERT INTO v2 SELECT subject, seq, records FROM flow_index; "
        "DROP TABLE flow_index; DROP TABLE flow_index_runs; "
        "ALTER TABLE v2 RENAME TO flow_index; PRAGMA user_version = 2;")
    con.close()


async def test_an_index_of_schema_version_2_becomes_run_1(tmp_path: Path):
    lg = await SqliteLedger.open(tmp_path / "node")
    expected = await _transfers(lg, 3)
    total = sum(map(len, expected.values()))
    await lg.close()
    _as_version_2(tmp_path / "node" / "ledger.db")

    lg = await SqliteLedger.open(tmp_path / "node")
    try:
        assert await lg.db.version() == len(MIGRATIONS) == 3
        assert await _runs(lg) == [(1, total, None, None)]
        assert await _seen(lg) == expected
        assert (await lg.verify()).ok
    finally:
        await lg.close()

    empty = tmp_path / "empty"                                # nothing indexed yet: no run
    await (await SqliteLedger.open(empty)).close()
    _as_version_2(empty / "ledger.db")
    lg = await SqliteLedger.open(empty)
    try:
        assert await _runs(lg) == []
        assert await lg.entries_for("R001") == [] and (await lg.verify()).ok
    finally:
        await lg.close()


class _Registry:
    """What the maintenance loop sends checkpoints to: takes them all (the registry's side is
    tested in test_ledger_audit.py)."""

    def __init__(self) -> None:
        self.received = 0

    async def submit_ledger_checkpoints(self, checkpoints: list[bytes]):
        self.received += len(checkpoints)
        return SimpleNamespace(rejected=[])


async def test_the_maintenance_loop_merges_after_a_checkpoint(tmp_path: Path, ca, small_runs):
    data_dir = tmp_path / "node"
    lg = await SqliteLedger.open(data_dir)
    expected = await _transfers(lg, 10, seed=3)
    await lg.append_many(flows(["R001"]))             # not yet indexed: the checkpoint fills it
    expected["R001"].append(((await lg.head())[0], 1))
    many = len(await _runs(lg))
    await lg.close()
    registry = _Registry()
    maintenance = Maintenance(ConnectorConfig(data_dir=data_dir),
                              keystore_at(ca, data_dir / "tls"), registry, None, None, "")
    assert await maintenance.checkpoint_ledger_once() == 1 and registry.received == 1
    lg = await SqliteLedger.open(data_dir)
    try:
        runs = await _runs(lg)
        assert len(runs) < many, (many, runs)
        assert max(Counter(ledger_index.size_class(n) for _, n, _, _ in runs).values()) \
            < ledger_index.FAN_IN
        assert await _seen(lg) == expected and (await lg.verify()).ok
    finally:
        await lg.close()


def _reference_rows(blobs):
    """The index rows as the reference decoder gives them, with Python lists and a Python sort
    (what ``index_rows`` did before it decoded into Arrow arrays)."""
    rows = []
    for seq, blob in blobs:
        try:
            subjects, records = decode_subjects(blob)
        except (ValueError, UnicodeDecodeError, TypeError):
            continue
        summed: dict[str, int] = {}
        for s, n in zip(subjects, records, strict=True):
            summed[s] = summed.get(s, 0) + n
        rows += ((s, seq, n) for s, n in summed.items())
    return sorted(rows)


def test_index_rows_equal_the_reference_decoder_s_on_odd_lists():
    """Widths 0/1/2/4, a resident twice in one entry (one row, summed), non-ASCII and
    astral-plane ids (sorted by code point as SQLite's BINARY collation sorts UTF-8), empty
    lists, and damaged ones (cut short, lengths not adding up, bytes that are not UTF-8, a
    width that does not exist), which add nothing."""
    rng = random.Random(18)
    names = ["R001", "R002", "住民Ｂ", "住民B", "ｱ", "𠮷野", "é", "e\u0301", "Z" * 300, "a"]
    blobs = []
    for seq in range(1, 60):
        subjects = [rng.choice(names) for _ in range(rng.randrange(0, 12))]
        records = [rng.choice([1, 1, 7, 300, 70_000]) for _ in subjects]
        blobs.append((seq, encode_subjects(subjects, records)))
    good = encode_subjects(["R1", "R2"], [1, 2])
    blobs += [(60, good[:-1]), (61, good + b"x"), (62, good[:6]), (63, b"\x09" + good[1:]),
              (64, encode_subjects(["ab", "cd"], [1, 1])[:-2] + b"\xff\xfe"), (65, b"")]
    assert ledger_index.index_rows(blobs) == _reference_rows(blobs)
    assert ledger_index.index_rows(blobs[-6:]) == []
    summed = ledger_index.index_rows([(5, encode_subjects(["A", "B", "A"], [2, 1, 3]))])
    assert summed == [("A", 5, 5), ("B", 5, 1)]
