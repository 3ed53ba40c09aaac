"""Row-hash snapshots per dataset version: what lets a subscriber fetch only what changed.

For a watched dataset the provider keeps, per version, the 64-bit hashes of its records
(``store/<dataset>/hashes/<version>.u64``, 8 bytes a record). An incremental transfer since
version V sends the records whose hash is not in V's snapshot (added or changed) and counts
those of V that are gone. Without V's snapshot the provider falls back to a full transfer and
says so in the header.
"""

from __future__ import annotations

import asyncio
import re

import pyarrow as pa

from connector.adapters.base import Source
from connector.datasets.store import PublisherStore, checked_id
from connector.transfer.batches import row_hashes, uint64_bytes
from mesh.files import atomic_write

KEEP = 4
_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,80}$")


class RowHashSnapshots:
    def __init__(self, store: PublisherStore, dataset_id: str) -> None:
        self.folder = store.root / "store" / checked_id(dataset_id) / "hashes"

    def _path(self, version: str):
        if not _VERSION.match(version):
            return None
        return self.folder / f"{version}.u64"

    def has(self, version: str) -> bool:
        path = self._path(version)
        return bool(path and path.exists())

    def load(self, version: str) -> pa.UInt64Array | None:
        path = self._path(version)
        if path is None or not path.exists():
            return None
        raw = path.read_bytes()
        return pa.Array.from_buffers(pa.uint64(), len(raw) // 8, [None, pa.py_buffer(raw)])

    async def build(self, version: str, source: Source) -> int:
        """Hash every record of ``source`` (at ``version``) and keep the snapshot."""
        parts: list[bytes] = []
        async for batch in source.read():
            hashes = await asyncio.to_thread(row_hashes, batch)
            parts.append(uint64_bytes(hashes))
        path = self._path(version)
        assert path is not None
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, b"".join(parts), mode=0o600)
        for old in sorted(self.folder.glob("*.u64"), key=lambda p: p.stat().st_mtime, reverse=True)[KEEP:]:
            old.unlink(missing_ok=True)
        return sum(len(p) for p in parts) // 8
