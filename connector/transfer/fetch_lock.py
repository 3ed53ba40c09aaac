"""One fetch at a time per agreement and output, and a running fetch told from a dead one.

A fetch (``Fetcher.run``, from the CLI or the console) holds an exclusive ``flock`` on
``<key>.lock`` beside its journal (``DATA_DIR/transfers/<agreement>/<key>.json``) for its whole
run. A second fetch of the same agreement into the same file finds it held and refuses
(``fetch_running``): two writers of one part file and one journal would corrupt both.

The kernel drops the lock when its process dies, however it dies, so "this consumer row is
``running`` but no lock of its agreement is held with its journal" means the fetch is gone (a
CLI killed with kill -9, a connector that died): ``recover_consumer_orphans`` marks such rows
interrupted. ``flock`` (not ``fcntl``/``lockf``) matters: its locks belong to the open file, so a
probe from the process that runs the fetch (the console's own fetches) sees it held too, and
closing the probe does not release it.

A lock file is removed by its holder when the fetch ends. One left by kill -9 is harmless (no
one holds it) and removed when its row is recovered (or by the next fetch into the same file,
when that one ends). Removal happens while holding the lock, and a taker checks that the file it
locked is still the one at the path, so a removal never lets two fetches hold "the" lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from connector.transfer.journal import TransferJournal
from mesh.errors import Conflict

if TYPE_CHECKING:
    from connector.metering.store import TransferRow, UsageStore

LOCK_SUFFIX = ".lock"
# A probe (``held``) holds a lock for an instant: a fetch starting just then tries again.
ACQUIRE_TRIES = 10
ACQUIRE_PAUSE = 0.05


def lock_path(journal_path: Path) -> Path:
    return journal_path.with_suffix(LOCK_SUFFIX)


def _flock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _is_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path`` (not removed or replaced)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


class FetchLock:
    """The lock of the fetch whose journal is at ``journal_path``."""

    def __init__(self, journal_path: Path) -> None:
        self.path = lock_path(journal_path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if not _flock(fd, fcntl.LOCK_EX):
                os.close(fd)
                return False
            if _is_at(fd, self.path):
                self._fd = fd
                return True
            os.close(fd)  # removed by its last holder after it was opened: take the new file

    async def acquire(self, out: Path) -> FetchLock:
        """Take the lock, or raise ``Conflict`` (``fetch_running``): another fetch, in this
        process or another, is writing ``out`` for the same agreement now."""
        for _ in range(ACQUIRE_TRIES):
            if self.try_acquire():
                return self
            await asyncio.sleep(ACQUIRE_PAUSE)
        raise Conflict(f"another fetch into {out} is running now (areamesh connector fetch or the "
                       "console); wait for it to end, it resumes from where it stopped if cut off",
                       message_ja=f"{out} への取得は別の処理で実行中です。終わるまでお待ちください",
                       code="fetch_running", details={"field": "file"})

    def release(self) -> None:
        """Remove the lock file, then unlock (in that order: see ``try_acquire``)."""
        if self._fd is None:
            return
        try:
            if _is_at(self._fd, self.path):
                self.path.unlink()
        finally:
            os.close(self._fd)
            self._fd = None


def held(path: Path) -> bool:
    """Whether a fetch holds the lock file ``path`` now (a missing file: no)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return not _flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)  # a shared lock taken by the probe goes with it


def remove_if_free(path: Path) -> bool:
    """Remove a lock file no one holds (one left by a killed fetch); True if removed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if not _flock(fd, fcntl.LOCK_EX) or not _is_at(fd, path):
            return False
        path.unlink()
        return True
    finally:
        os.close(fd)


def _folder(data_dir: Path, agreement_id: str) -> Path | None:
    folder = data_dir / "transfers" / agreement_id
    return folder if "/" not in agreement_id and agreement_id not in ("", ".", "..") else None


def fetch_is_live(data_dir: Path) -> Callable[[TransferRow], bool]:
    """For ``UsageStore.recover_consumer_orphans``: whether a consumer row's fetch is running,
    in any process. Live: a held lock of its agreement whose journal names the row's transfer,
    or has no readable journal (the instant around writing or removing it: cannot tell, so
    live). A held lock whose journal names another transfer (a fetch into another file, or one
    started over) does not keep this row running."""
    def is_live(row: TransferRow) -> bool:
        folder = _folder(data_dir, row.agreement_id)
        for lock in sorted(folder.glob(f"*{LOCK_SUFFIX}")) if folder and folder.is_dir() else []:
            if not held(lock):
                continue
            try:
                transfer_id = TransferJournal.read(lock.with_suffix(".json")).transfer_id
            except (OSError, ValueError, TypeError, json.JSONDecodeError):
                return True
            if transfer_id == row.id:
                return True
        return False
    return is_live


def remove_free_locks(data_dir: Path, agreement_ids: Iterable[str] | None = None) -> int:
    """Remove the lock files no fetch holds, of these agreements (None: all); how many."""
    root = data_dir / "transfers"
    if agreement_ids is None:
        locks = sorted(root.glob(f"*/*{LOCK_SUFFIX}")) if root.is_dir() else []
    else:
        folders = [f for a in set(agreement_ids) if (f := _folder(data_dir, a)) and f.is_dir()]
        locks = [lock for f in folders for lock in sorted(f.glob(f"*{LOCK_SUFFIX}"))]
    return sum(remove_if_free(lock) for lock in locks)


async def recover_consumer_orphans(usage: UsageStore, data_dir: Path) -> int:
    """Mark the consumer's fetches that died while ``running`` interrupted (their counts kept;
    running the same fetch again resumes it and sets its row running again) and remove their
    stale lock files. How many rows changed."""
    rows = await usage.recover_consumer_orphans(fetch_is_live(data_dir))
    if rows:
        remove_free_locks(data_dir, (r.agreement_id for r in rows))
    return len(rows)
