"""Crash-safe file writes: temp file, fsync, rename, fsync the folder.

Secrets are written with mode 0600 from the first byte (the temp file is created with it),
so a key is never world-readable, not even for a moment.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

SECRET_MODE = 0o600


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name per call (two threads of one process may write the same file) created
    # with O_EXCL (never reuse or follow a file someone else put there).
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_secret(path: Path, data: bytes) -> None:
    """Write a secret (a private key, a token secret) with mode 0600."""
    atomic_write(path, data, mode=SECRET_MODE)


def read_secret(path: Path) -> bytes:
    """Read a secret, refusing one that others can read (as ssh does with private keys)."""
    st = path.stat()
    if st.st_mode & 0o077:
        raise PermissionError(
            f"{path} is readable by group or others (mode {oct(st.st_mode & 0o777)}); "
            f"run: chmod 600 {path}")
    return path.read_bytes()


STABLE_AFTER = 2.0   # seconds unchanged before a file's state may stand for its content


def stable_state(path: Path, *, max_size: int | None = None) -> tuple | None:
    """A key for the exact content of ``path`` while it stays unchanged, for caches of what was
    read from it: (device, inode, size, mtime ns, ctime ns). None when the file is missing,
    larger than ``max_size``, or changed less than ``STABLE_AFTER`` seconds ago: a write within
    the same clock tick as the state's last change could leave it as it was (git's "racily
    clean" rule). Afterwards any write, rename over the file or touch changes the state, and
    ctime cannot be set back."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if (max_size is not None and st.st_size > max_size) or \
            time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < STABLE_AFTER * 1e9:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
