"""Pairwise pseudonyms: what a receiving participant learns about a linked resident.

``pseudonym = "pp_" + base64url(HMAC-SHA256(secret, person id ‖ receiving participant id))[:128 bits]``

- stable: the same person gives the same receiver the same pseudonym every time;
- pairwise: two receivers get unrelated values for the same person, and without the secret no
  one can tell whether two pseudonyms (or a pseudonym and a platform's local id) are the same
  resident (OpenID Connect's pairwise subject identifiers, with the platform ids hidden too);
- the secret is 32 random bytes in ``DATA_DIR/identity/pseudonym.key``, created once with mode
  0600 and never leaving the registry. Losing it changes every pseudonym; back it up with the
  identity database.

Merging two persons keeps the survivor's pseudonyms (see ``IdentityService.link``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from mesh.files import read_secret, write_secret

log = logging.getLogger("areamesh.registry.identity")

KEY_FILE = "pseudonym.key"
KEY_BYTES = 32
PREFIX = "pp_"
DIGEST_BYTES = 16  # 128 bits: 22 base64url characters


def load_or_create_key(identity_dir: Path) -> bytes:
    """The pseudonym secret, created (0600, crash-safe) on first use. Creation is exclusive
    (a hard link to a fully written temp file), so two processes starting at once agree."""
    path = identity_dir / KEY_FILE
    try:
        key = read_secret(path)
    except FileNotFoundError:
        identity_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.new-{os.getpid()}-{secrets.token_hex(4)}")
        write_secret(tmp, secrets.token_bytes(KEY_BYTES))
        try:
            os.link(tmp, path)
            log.info("created pseudonym key %s", path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(identity_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        key = read_secret(path)
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: expected a {KEY_BYTES}-byte key, found {len(key)} bytes")
    return key


class PseudonymKey:
    """Derives pairwise pseudonyms with one secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ValueError(f"pseudonym secret must be at least {KEY_BYTES} bytes")
        self._secret = secret

    @classmethod
    def open(cls, identity_dir: Path) -> PseudonymKey:
        return cls(load_or_create_key(identity_dir))

    def pseudonym(self, person_id: str, participant_id: str) -> str:
        """The pseudonym of ``person_id`` as seen by ``participant_id``."""
        # Length-prefixed fields: ("ab", "c") and ("a", "bc") never share an input.
        message = b"areamesh-pairwise-v1\x00" + b"".join(
            len(part).to_bytes(2, "big") + part
            for part in (person_id.encode(), participant_id.encode()))
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()[:DIGEST_BYTES]
        return PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    @staticmethod
    def looks_valid(text: str) -> bool:
        """True when ``text`` has the shape of a pseudonym (cheap check before a lookup)."""
        body = text[len(PREFIX):] if text.startswith(PREFIX) else None
        return (body is not None and len(body) == 22
                and all(c.isascii() and (c.isalnum() or c in "-_") for c in body))
