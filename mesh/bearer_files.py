"""Bearer secrets kept in files: a connector's operator key and its resident portal's token.

The file (mode 0600, created on first use) holds the secret the caller sends as
``Authorization: Bearer <secret>``. Whoever can read the file is the credential's holder, as
with a private key; the server compares in constant time and re-reads the file when it changes,
so a rotation (``areamesh connector operator-key rotate``) takes effect without a restart.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from mesh.files import SECRET_MODE, atomic_write


class BearerFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._secret = b""

    def ensure(self) -> str:
        """The secret, created (0600) if the file does not exist yet."""
        if not self.path.exists():
            self.rotate()
        return self._read()

    def rotate(self) -> str:
        """Replace the secret; the old one stops working at once."""
        atomic_write(self.path, secrets.token_urlsafe(32).encode(), mode=SECRET_MODE)
        return self._read()

    def matches(self, given: str) -> bool:
        try:
            secret = self._read().encode()
        except OSError:
            return False
        return bool(secret) and hmac.compare_digest(given.encode("utf-8", "replace"), secret)

    def _read(self) -> str:
        st = os.stat(self.path)
        stamp = (st.st_mtime_ns, st.st_ino, st.st_size)
        if stamp != self._stamp:
            self._secret = self.path.read_bytes().strip()
            self._stamp = stamp
        return self._secret.decode()


def bearer_of(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
