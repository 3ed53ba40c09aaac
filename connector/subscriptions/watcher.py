"""DatasetWatcher: notices when a subscribed dataset changes, in the serving connector.

Every ``interval`` it asks each watched dataset for its version (``datasets/sources.py``: the
source's fingerprint and refresh generation, or the internal copy id) — cheap for files and
copies. When the version moves, it first keeps the row-hash snapshot of the new version (so a
later incremental fetch since it is possible), then puts a notice on every subscriber's queue.
Only datasets somebody subscribes to are watched. ``request_check`` (an NGSI v2 broker's
notification, ``orion_store.py``) wakes the loop at once instead of at the next interval; the
change it finds carries the cause given there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime

from connector.datasets.store import find_dataset
from mesh.clock import utcnow
from mesh.errors import AreameshError

log = logging.getLogger("areamesh.connector.subscriptions")


@dataclass(frozen=True)
class Change:
    dataset_id: str
    version: str
    previous: str
    at: datetime
    cause: str


@dataclass
class _Watched:
    version: str
    queues: set[asyncio.Queue] = field(default_factory=set)


class DatasetWatcher:
    def __init__(self, data_dir, interval: float) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self._watched: dict[str, _Watched] = {}
        self._lock = asyncio.Lock()
        self._due: dict[str, str] = {}          # dataset id → cause of an early check
        self._wake = asyncio.Event()

    async def current_version(self, dataset_id: str, *, snapshot: bool = True) -> str:
        # imported on first use: adapters and snapshots need pyarrow, which an idle connector skips
        from connector.datasets.sources import dataset_version, open_dataset_source
        from connector.transfer.snapshots import RowHashSnapshots

        store, doc = find_dataset(self.data_dir, dataset_id)
        source = open_dataset_source(store, doc)
        try:
            version = await dataset_version(store, doc, source)
            snapshots = RowHashSnapshots(store, dataset_id)
            if snapshot and not snapshots.has(version):
                n = await snapshots.build(version, source)
                log.info("row-hash snapshot of %s at %s: %d records", dataset_id, version, n)
            return version
        finally:
            await source.close()

    async def subscribe(self, dataset_id: str) -> tuple[asyncio.Queue, str]:
        """A queue of ``Change`` for ``dataset_id`` and its current version."""
        async with self._lock:
            watched = self._watched.get(dataset_id)
            if watched is None:
                watched = self._watched[dataset_id] = _Watched(await self.current_version(dataset_id))
            queue: asyncio.Queue = asyncio.Queue(maxsize=100)
            watched.queues.add(queue)
            return queue, watched.version

    def unsubscribe(self, dataset_id: str, queue: asyncio.Queue) -> None:
        watched = self._watched.get(dataset_id)
        if watched is None:
            return
        watched.queues.discard(queue)
        if not watched.queues:
            del self._watched[dataset_id]

    def subscriber_count(self) -> int:
        return sum(len(w.queues) for w in self._watched.values())

    def watched(self) -> list[tuple[str, str, int]]:
        """(dataset id, version last seen, open subscriptions) of every watched dataset."""
        return sorted((d, w.version, len(w.queues)) for d, w in self._watched.items())

    def request_check(self, dataset_id: str, cause: str) -> bool:
        """Check ``dataset_id`` now rather than at the next interval; False when nobody watches
        it (there is no one to tell)."""
        if dataset_id not in self._watched:
            return False
        self._due[dataset_id] = cause
        self._wake.set()
        return True

    async def check_once(self, causes: dict[str, str] | None = None) -> list[Change]:
        """Check every watched dataset; a change of one named in ``causes`` carries that cause."""
        causes = causes or {}
        changes = []
        async with self._lock:
            for dataset_id, watched in list(self._watched.items()):
                try:
                    version = await self.current_version(dataset_id)
                except AreameshError as exc:
                    log.warning("cannot check %s for changes: %s", dataset_id, exc.message)
                    continue
                if version == watched.version:
                    continue
                change = Change(dataset_id, version, watched.version, utcnow(),
                                causes.get(dataset_id, "changed"))
                watched.version = version
                changes.append(change)
                for queue in list(watched.queues):
                    with contextlib.suppress(asyncio.QueueFull):  # a stuck subscriber gets the next one
                        queue.put_nowait(change)
                log.info("dataset %s changed: %s → %s (%d subscribers)", dataset_id, change.previous,
                         version, len(watched.queues))
        return changes

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            due, self._due = self._due, {}
            try:
                await self.check_once(due)
            except Exception:  # the loop must outlive one bad dataset
                log.exception("change check failed")
