"""File helpers for file adapters: a streaming atomic writer and a stat-based fingerprint.

``AtomicFile`` follows :func:`mesh.files.atomic_write` (temp file created with O_EXCL next to
the target, fsync, rename, fsync the folder) but accepts the data in pieces, so a sink never
holds a whole dataset in memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from pathlib import Path

from connector.adapters.base import SourceError
from mesh.errors import FailedPrecondition


def file_fingerprint(path: Path, kind: str, *extra: Path) -> str:
    """``mtime_ns:size`` of ``path`` (and of ``extra`` files that exist), hashed to a short token."""
    digest = hashlib.sha256()
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SourceError(f"{kind} adapter: file not found: {path}",
                          message_ja=f"ファイルがありません: {path}") from None
    digest.update(f"{st.st_mtime_ns}:{st.st_size}".encode())
    for other in extra:
        if other.exists():
            st = other.stat()
            digest.update(f"|{other.name}:{st.st_mtime_ns}:{st.st_size}".encode())
    return digest.hexdigest()[:32]


class AtomicFile:
    """Write ``path`` in pieces; readers see the old file until ``commit()``, never a partial one."""

    def __init__(self, path: Path, *, mode: int = 0o644) -> None:
        self.path = path
        self.mode = mode
        self.tmp: Path | None = None
        self._fd: int | None = None
        self.done = False

    def _open(self) -> int:
        if self.done:
            raise FailedPrecondition(f"sink for {self.path} is already committed or aborted")
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
            self._fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.mode)
        return self._fd

    def _write(self, data: bytes) -> None:
        fd = self._open()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]

    def _commit(self) -> None:
        fd = self._open()
        try:
            os.fchmod(fd, self.mode)
            os.fsync(fd)
        finally:
            os.close(fd)
            self._fd = None
        os.replace(self.tmp, self.path)
        self.done = True
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.tmp is not None and not self.done:
            self.tmp.unlink(missing_ok=True)
        self.done = True

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self._write, data)

    async def commit(self) -> None:
        try:
            await asyncio.to_thread(self._commit)
        except BaseException:
            self._abort()
            raise

    async def abort(self) -> None:
        await asyncio.to_thread(self._abort)
