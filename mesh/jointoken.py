"""Join tokens: one-time, expiring, bound to a participant, pinning the mesh CA.

Printed form: ``am1.<id>.<secret>.<ca>`` where ``id`` names the token at the registry,
``secret`` proves possession (the registry stores only its SHA-256) and ``ca`` is the
base64url SHA-256 of the mesh CA certificate, so the joining node can authenticate the
registry on first contact (like ``kubeadm join --discovery-token-ca-cert-hash``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass

from mesh.errors import InvalidRequest

PREFIX = "am1"
_FORM = re.compile(r"^am1\.([a-z2-7]{10})\.([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class JoinToken:
    token_id: str
    secret: str
    ca_fingerprint: str  # sha256:<hex>

    def __str__(self) -> str:
        raw = bytes.fromhex(self.ca_fingerprint.removeprefix("sha256:"))
        ca = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return f"{PREFIX}.{self.token_id}.{self.secret}.{ca}"

    @property
    def secret_sha256(self) -> str:
        return secret_sha256(self.secret)

    @classmethod
    def new(cls, ca_fingerprint: str) -> JoinToken:
        return cls(new_secret_id(), secrets.token_urlsafe(24), ca_fingerprint)

    @classmethod
    def parse(cls, text: str) -> JoinToken:
        m = _FORM.match(text.strip())
        if not m:
            raise InvalidRequest(
                "malformed join token: expected am1.<id>.<secret>.<ca-hash> as printed by "
                "'areamesh registry token create'",
                message_ja="参加トークンの形式が正しくありません", code="malformed_token")
        raw = base64.urlsafe_b64decode(m.group(3) + "=")
        return cls(m.group(1), m.group(2), "sha256:" + raw.hex())


def new_secret_id() -> str:
    """10 characters of base32: the public name of a token or an API key."""
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()[:10]


def secret_sha256(secret: str) -> str:
    """What the registry stores of a token's or an API key's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_sha256: str) -> bool:
    return secrets.compare_digest(secret_sha256(secret), stored_sha256)
