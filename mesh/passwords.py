"""Passwords of console accounts (registry operators, connector operators): argon2id hashes
(argon2-cffi's RFC 9106 defaults), checked off the event loop, at most two at a time, and a
short lock-out after repeated failures for one account."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from mesh.errors import InvalidRequest
from mesh.files import read_secret

MIN_LENGTH = 12
MAX_LENGTH = 1024
_hasher = PasswordHasher()
_checks = asyncio.Semaphore(2)       # argon2 takes 64 MiB and tens of ms: never many at once


def check_policy(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidRequest(f"a password must be {MIN_LENGTH} to {MAX_LENGTH} characters",
                             message_ja=f"パスワードは{MIN_LENGTH}文字以上にしてください",
                             code="weak_password")


def hash_password(password: str) -> str:
    check_policy(password)
    return _hasher.hash(password)


async def password_matches(stored_hash: str, password: str) -> bool:
    if len(password) > MAX_LENGTH:
        return False
    async with _checks:
        try:
            return await asyncio.to_thread(_hasher.verify, stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False


def read_password_file(path: Path) -> str:
    """The password in ``path`` (first line), refusing a file that others can read."""
    try:
        text = read_secret(path).decode("utf-8")
    except PermissionError as exc:
        raise InvalidRequest(str(exc), message_ja="パスワードファイルは 0600 にしてください",
                             code="password_file_mode") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read the password file {path}: {exc}",
                             code="password_file_unreadable") from None
    return text.splitlines()[0] if text else ""


class FailureThrottle:
    """After ``limit`` wrong passwords for one account within ``window`` seconds, further
    attempts for it are refused unchecked until the window has passed (in memory, per process)."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[str, list[float]] = {}

    def locked(self, name: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(name, []) if now - t < self.window]
        if recent:
            self._failures[name] = recent
        else:
            self._failures.pop(name, None)
        return len(recent) >= self.limit

    def failed(self, name: str) -> None:
        if len(self._failures) > 10_000:      # bounded memory under a spray of names
            self._failures.clear()
        self._failures.setdefault(name, []).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)
