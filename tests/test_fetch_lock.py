"""A consumer fetch's lock (``connector/transfer/fetch_lock.py``): a second fetch into the same
file refuses, a fetch another process runs right now is never marked interrupted, and one whose
process was killed (kill -9) is, by the start-up, the pages and ``connector transfers``."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from areamesh.processes import run_cli
from connector.metering.store import UsageStore, open_metering_db
from connector.transfer.fetch_lock import (
    FetchLock,
    fetch_is_live,
    held,
    lock_path,
    recover_consumer_orphans,
    remove_free_locks,
)
from connector.transfer.journal import TransferJournal
from mesh.errors import Conflict

AGREEMENT = "agr-0001"
ROOT = Path(__file__).resolve().parents[1]

# A stand-in for `areamesh connector fetch`: takes the fetch's lock as Fetcher.run does, says so,
# and holds it until killed.
HOLDER = """
import asyncio, sys
from pathlib import Path
from connector.transfer.fetch_lock import FetchLock
asyncio.run(FetchLock(Path(sys.argv[1])).acquire(Path(sys.argv[2])))
print("locked", flush=True)
sys.stdin.read()
"""


def _journal(data_dir: Path, out: Path, transfer_id: str) -> Path:
    path = TransferJournal.path_for(data_dir, AGREEMENT, out)
    TransferJournal(AGREEMENT, str(out), "ndjson", "", transfer_id=transfer_id, acked_seq=3,
                    records=300, bytes=4096).save(path)
    return path


class Holder:
    """A real process holding the lock of ``journal``."""

    def __init__(self, journal: Path, out: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(journal), str(out)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout.readline().strip() == "locked"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def holders():
    started: list[Holder] = []

    def start(journal: Path, out: Path) -> Holder:
        started.append(Holder(journal, out))
        return started[-1]

    yield start
    for h in started:
        h.close()


async def _running_row(data_dir: Path, transfer_id: str, records: int = 300) -> None:
    async with open_metering_db(data_dir) as db:
        usage = UsageStore(db)
        await usage.start(id=transfer_id, role="consumer", agreement_id=AGREEMENT,
                          dataset_id="ds", provider="urn:p", consumer="urn:c", version="v1",
                          incremental=False)
        await usage.progress(transfer_id, records=records, bytes=4096, batches=3)


async def _recover(data_dir: Path) -> tuple[int, dict[str, str]]:
    async with open_metering_db(data_dir) as db:
        usage = UsageStore(db)
        n = await recover_consumer_orphans(usage, data_dir)
        return n, {r.id: r.status for r in await usage.list()}


async def test_a_fetch_another_process_runs_is_left_running_and_a_killed_one_is_interrupted(
        tmp_path: Path, holders):
    out = tmp_path / "downloads" / "population.ndjson"
    journal = _journal(tmp_path, out, "t-live")
    await _running_row(tmp_path, "t-live")
    holder = holders(journal, out)

    n, status = await _recover(tmp_path)
    assert (n, status) == (0, {"t-live": "running"})   # its lock is held: running, whatever asks
    assert held(lock_path(journal))
    with pytest.raises(Conflict) as exc:                # a second fetch into the same file
        await FetchLock(journal).acquire(out)
    assert exc.value.code == "fetch_running" and str(out) in exc.value.message

    holder.kill()                                       # kill -9: the kernel drops the lock
    assert lock_path(journal).exists() and not held(lock_path(journal))
    n, status = await _recover(tmp_path)
    assert (n, status) == (1, {"t-live": "interrupted"})
    async with open_metering_db(tmp_path) as db:
        row = await UsageStore(db).get("t-live")
    assert (row.records, row.bytes, row.batches, row.role) == (300, 4096, 3, "consumer")
    assert row.ended_at
    assert not lock_path(journal).exists()              # the stale lock went with the row
    assert journal.exists()                             # the journal stays: the fetch resumes
    lock = await FetchLock(journal).acquire(out)        # and it can: the lock is free
    lock.release()
    assert not lock_path(journal).exists()


async def test_the_cli_transfers_command_marks_a_killed_fetch_interrupted(tmp_path: Path, holders):
    out = tmp_path / "downloads" / "a.ndjson"
    live_out = tmp_path / "downloads" / "b.ndjson"
    _journal(tmp_path, out, "t-dead")
    live_journal = _journal(tmp_path, live_out, "t-live")
    await _running_row(tmp_path, "t-dead")
    await _running_row(tmp_path, "t-live")
    holders(_journal(tmp_path, out, "t-dead"), out).kill()
    holders(live_journal, live_out)

    rc, stdout, err = await run_cli("connector", "transfers", "--data-dir", str(tmp_path), "--json")
    assert rc == 0, err
    status = {r["id"]: (r["status"], r["records"]) for r in json.loads(stdout)}
    assert status == {"t-dead": ("interrupted", 300), "t-live": ("running", 300)}


async def test_a_lock_held_in_this_process_counts_and_other_transfers_do_not(tmp_path: Path):
    """The console runs fetches in the server's own process: a probe there sees them held."""
    out = tmp_path / "x.ndjson"
    journal = _journal(tmp_path, out, "t-console")
    await _running_row(tmp_path, "t-console")
    await _running_row(tmp_path, "t-old")        # an earlier transfer of the same agreement
    lock = await FetchLock(journal).acquire(out)
    try:
        assert held(lock.path)
        live = fetch_is_live(tmp_path)
        async with open_metering_db(tmp_path) as db:
            rows = {r.id: r for r in await UsageStore(db).list()}
        assert live(rows["t-console"]) and not live(rows["t-old"])
        n, status = await _recover(tmp_path)
        assert (n, status) == (1, {"t-console": "running", "t-old": "interrupted"})
        assert held(lock.path)                   # probing did not release it
        with pytest.raises(Conflict):
            await FetchLock(journal).acquire(out)
    finally:
        lock.release()
    assert not lock.path.exists()


async def test_a_held_lock_without_a_journal_is_taken_for_live(tmp_path: Path):
    """The instant a fetch writes or removes its journal: cannot tell, so not touched."""
    out = tmp_path / "x.ndjson"
    journal = TransferJournal.path_for(tmp_path, AGREEMENT, out)
    await _running_row(tmp_path, "t-1")
    lock = await FetchLock(journal).acquire(out)
    try:
        assert (await _recover(tmp_path)) == (0, {"t-1": "running"})
    finally:
        lock.release()
    assert (await _recover(tmp_path)) == (1, {"t-1": "interrupted"})


def test_free_locks_are_removed_held_ones_kept(tmp_path: Path, holders):
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    ja, jb = _journal(tmp_path, a, "t-a"), _journal(tmp_path, b, "t-b")
    holders(ja, a).kill()
    holders(jb, b)
    assert remove_free_locks(tmp_path) == 1
    assert not lock_path(ja).exists() and held(lock_path(jb))


def test_a_lock_removed_under_a_waiting_taker_is_not_shared(tmp_path: Path):
    """A taker that opened the old file before its holder removed it locks the new file."""
    journal = tmp_path / "transfers" / AGREEMENT / "k.json"
    first = FetchLock(journal)
    assert first.try_acquire()
    stale_fd = os.open(first.path, os.O_RDONLY)   # opened before the removal
    first.release()
    try:
        fcntl.flock(stale_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # the late taker locks the old file
        second, third = FetchLock(journal), FetchLock(journal)
        assert second.try_acquire() and not third.try_acquire()
        assert os.fstat(stale_fd).st_ino != os.stat(second.path).st_ino
        second.release()
    finally:
        os.close(stale_fd)


def _consumer_rows(data_dir: Path) -> list[str]:
    if not (data_dir / "metering.db").exists():
        return []
    with closing(sqlite3.connect(f"file:{data_dir / 'metering.db'}?mode=ro", uri=True)) as db:
        try:
            return [r[0] for r in db.execute("SELECT id FROM transfers WHERE role = 'consumer'")]
        except sqlite3.OperationalError:   # not created yet
            return []


@pytest.mark.integration
async def test_a_real_fetch_killed_mid_transfer_is_interrupted_then_resumes(harness):
    """`areamesh connector fetch` stopped mid-stream (SIGSTOP): its row runs and a second fetch
    into the same file refuses; killed (SIGKILL): `connector transfers` reads it interrupted,
    its lock is gone, and the same command resumes it to the end."""
    import asyncio

    from areamesh.processes import areamesh_command

    from .transfer_fixtures import agree, as_text, fetch_cli, ndjson_rows, setup_transfer_mesh, source_rows

    h = harness
    _provider, source = await setup_transfer_mesh(h, rows=300_000)
    agreement = await agree(h)
    data_dir, out = h.root / "kakogawa", h.root / "got" / "population.ndjson"
    journal = TransferJournal.path_for(data_dir, agreement, out)
    proc = await asyncio.create_subprocess_exec(
        *areamesh_command("connector", "fetch", "--data-dir", str(data_dir), "--agreement",
                          agreement, "--out", str(out), "--json"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for _ in range(6000):   # until the header has arrived and the row is written
            if _consumer_rows(data_dir):
                break
            assert proc.returncode is None, "the fetch ended before it could be stopped"
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)
        [transfer_id] = _consumer_rows(data_dir)
        assert json.loads(journal.read_text())["transfer_id"] == transfer_id

        async def listed() -> dict[str, str]:
            rc, stdout, err = await run_cli("connector", "transfers", "--data-dir", str(data_dir),
                                            "--json")
            assert rc == 0, err
            return {r["id"]: r["status"] for r in json.loads(stdout)}

        assert (await listed())[transfer_id] == "running"      # its process holds the lock
        rc, _, err = await fetch_cli(h, agreement, out)
        assert rc == 1 and "fetch_running" in err, err
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert held(lock_path(journal)) is False and lock_path(journal).exists()
    assert (await listed())[transfer_id] == "interrupted"
    assert not lock_path(journal).exists()
    rc, result, err = await fetch_cli(h, agreement, out)
    assert rc == 0, err
    assert result["transfer_id"] == transfer_id and result["records"] == 300_000
    assert [as_text(r) for r in ndjson_rows(out)] == source_rows(source)
    assert (await listed())[transfer_id] == "complete"
    assert not lock_path(journal).exists() and not journal.exists()
