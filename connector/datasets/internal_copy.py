"""Internal management mode (内部管理, 2-3/2-4): the connector keeps its own copy of a dataset.

Each providing organisation's copies live under its own ``publishers/<id>/store/`` folder and
are encrypted with that organisation's own key (``credentials/store.key``, 0600, AES-256-GCM),
so one tenant's files are unreadable with another tenant's key, and a backup of the folder
without the key discloses nothing.

A copy is a sequence of frames ``[u32 length][12-byte nonce][ciphertext]``: frame 0 holds the
Arrow schema, the next frames one record batch each, and an empty end frame closes it. The
associated data binds each frame to its dataset, version and position, so frames cannot be
swapped, replayed from another copy or cut off without the read failing. A copy is written to a
temporary file and renamed; ``current.json`` then points at it, so a crash leaves the old copy.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import struct
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from connector.adapters.base import DEFAULT_BATCH_ROWS, Source, SourceError
from connector.datasets.store import PublisherStore, checked_id
from mesh.clock import iso, utcnow
from mesh.errors import FailedPrecondition
from mesh.files import atomic_write

MAGIC = b"AMC1"
KEEP_COPIES = 2          # the current one and the one before, for transfers still reading it
_LEN = struct.Struct(">I")


def _store_key(store: PublisherStore) -> bytes:
    path = store.root / "credentials" / "store.key"
    if not path.exists():
        store.ensure()
        atomic_write(path, secrets.token_bytes(32), mode=0o600)
    key = path.read_bytes()
    if len(key) != 32:
        raise FailedPrecondition(f"{path} is not a 32-byte key", code="bad_store_key")
    return key


def _aad(dataset_id: str, version: str, index: int) -> bytes:
    return f"{dataset_id}\x00{version}\x00{index}".encode()


class InternalCopies:
    """The encrypted copies of one publisher's datasets."""

    def __init__(self, store: PublisherStore) -> None:
        self.store = store

    def folder(self, dataset_id: str) -> Path:
        return self.store.root / "store" / checked_id(dataset_id)

    def current(self, dataset_id: str) -> dict[str, Any] | None:
        path = self.folder(dataset_id) / "current.json"
        return json.loads(path.read_text()) if path.exists() else None

    async def snapshot(self, dataset_id: str, source: Source) -> dict[str, Any]:
        """Copy everything ``source`` yields into a new encrypted copy and make it current."""
        folder = self.folder(dataset_id)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        aes = AESGCM(_store_key(self.store))
        version = f"copy-{utcnow():%Y%m%dT%H%M%S}-{secrets.token_hex(4)}"
        tmp = folder / f".{version}.tmp"
        records, digest = 0, hashlib.sha256()
        fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        out = os.fdopen(fd, "wb")
        index = 0

        async def frame(data: bytes) -> None:
            nonlocal index
            nonce = secrets.token_bytes(12)
            blob = aes.encrypt(nonce, data, _aad(dataset_id, version, index))
            await asyncio.to_thread(out.write, _LEN.pack(len(blob)) + nonce + blob)
            index += 1

        try:
            with out:
                out.write(MAGIC)
                schema = await source.schema()
                if schema is None:
                    raise SourceError("the source cannot state its schema; it cannot be copied")
                await frame(schema.serialize().to_pybytes())
                async for batch in source.read():
                    data = batch.serialize().to_pybytes()
                    digest.update(data)
                    await frame(data)
                    records += batch.num_rows
                await frame(b"")
                out.flush()
                await asyncio.to_thread(os.fsync, out.fileno())
            os.replace(tmp, folder / f"{version}.amc")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        meta = {"version": version, "records": records, "created_at": iso(utcnow()),
                "content_digest": "sha256:" + digest.hexdigest()}
        atomic_write(folder / "current.json", json.dumps(meta).encode(), mode=0o600)
        self._prune(folder)
        return meta

    def _prune(self, folder: Path) -> None:
        copies = sorted(folder.glob("copy-*.amc"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in copies[KEEP_COPIES:]:
            old.unlink(missing_ok=True)

    def source(self, dataset_id: str) -> InternalCopySource:
        meta = self.current(dataset_id)
        if meta is None:
            raise FailedPrecondition(
                f"dataset {dataset_id} is managed internally but has no copy yet; run "
                "'areamesh connector dataset refresh'",
                message_ja=f"データセット {dataset_id} の内部コピーがありません"
                           "（dataset refresh を実行してください）",
                code="no_internal_copy")
        return InternalCopySource(self.folder(dataset_id) / f"{meta['version']}.amc", dataset_id,
                                  meta["version"], _store_key(self.store))


class InternalCopySource:
    """A ``Source`` over one encrypted copy; its fingerprint is the copy's version."""

    def __init__(self, path: Path, dataset_id: str, version: str, key: bytes) -> None:
        self.path, self.dataset_id, self.version = path, dataset_id, version
        self._aes = AESGCM(key)

    def _frames(self) -> Iterator[bytes]:
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            raise FailedPrecondition(f"internal copy {self.version} of {self.dataset_id} is gone "
                                     "(replaced by a newer one)", code="source_changed") from None
        with f:
            if f.read(4) != MAGIC:
                raise SourceError(f"{self.path.name} is not an areamesh internal copy")
            index = 0
            while True:
                head = f.read(_LEN.size + 12)
                if len(head) < _LEN.size + 12:
                    raise SourceError(f"internal copy {self.path.name} is truncated at frame {index}")
                (size,), nonce = _LEN.unpack(head[:4]), head[4:]
                blob = f.read(size)
                try:
                    data = self._aes.decrypt(nonce, blob, _aad(self.dataset_id, self.version, index))
                except InvalidTag:
                    raise SourceError(f"internal copy {self.path.name}: frame {index} fails "
                                      "authentication (damaged, altered or another tenant's key)",
                                      details={"frame": index}) from None
                if index > 0 and not data:
                    return
                yield data
                index += 1

    async def schema(self) -> pa.Schema:
        frames = self._frames()
        try:
            return pa.ipc.read_schema(pa.py_buffer(await asyncio.to_thread(next, frames)))
        finally:
            frames.close()

    async def read(self, *, batch_rows: int = DEFAULT_BATCH_ROWS) -> AsyncIterator[pa.RecordBatch]:
        frames = self._frames()
        try:
            schema = pa.ipc.read_schema(pa.py_buffer(await asyncio.to_thread(next, frames)))
            while (data := await asyncio.to_thread(next, frames, None)) is not None:
                batch = pa.ipc.read_record_batch(pa.py_buffer(data), schema)
                for start in range(0, batch.num_rows, batch_rows):
                    yield batch.slice(start, batch_rows)
        finally:
            frames.close()

    async def fingerprint(self) -> str:
        return self.version

    async def close(self) -> None:
        return None
