"""Revocation: the signed list a node caches, and the check every gRPC call passes.

A node refreshes the registry's X.509 CRL periodically, verifies its signature against the
trusted roots, refuses an older list than the one it has (no rollback), keeps it on disk, and
keeps using it while the registry is down until ``next_update + grace``. After that it fails
closed: calls are refused with UNAVAILABLE until a fresh list arrives.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from mesh.certs import PeerIdentity
from mesh.errors import InvalidRequest, PermissionDenied, Unavailable
from mesh.files import atomic_write

log = logging.getLogger("areamesh.mesh.revocation")


class RevocationChecker(Protocol):
    """Decides whether a verified peer may still be served."""

    async def check(self, identity: PeerIdentity) -> None:
        """Return if ``identity`` is good; raise ``PermissionDenied`` if revoked, or
        ``Unavailable`` if the node cannot know (its list is too old)."""


def crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_oid(ExtensionOID.CRL_NUMBER).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


class CachedRevocationList:
    """The revocation list a connector holds, with its file ``tls/crl.der``."""

    def __init__(self, roots: list[x509.Certificate], path: Path, *, grace: timedelta) -> None:
        self.roots = roots
        self.path = path
        self.grace = grace
        self.number = -1
        self.this_update: datetime | None = None
        self.next_update: datetime | None = None
        self._revoked: dict[str, set[int]] = {}
        if path.exists():
            try:
                self._accept(x509.load_der_x509_crl(path.read_bytes()))
            except (ValueError, InvalidRequest) as exc:
                log.warning("ignoring unreadable cached revocation list %s: %s", path, exc)

    def _verify(self, crl: x509.CertificateRevocationList) -> None:
        for root in self.roots:
            if root.subject == crl.issuer and crl.is_signature_valid(root.public_key()):
                return
        raise InvalidRequest("revocation list is not signed by a trusted mesh CA",
                             code="bad_revocation_list")

    def _accept(self, crl: x509.CertificateRevocationList) -> None:
        self._verify(crl)
        self.number = crl_number(crl)
        self.this_update = crl.last_update_utc
        self.next_update = crl.next_update_utc
        self._revoked = {crl.issuer.rfc4514_string(): {r.serial_number for r in crl}}

    def update(self, crl_der: bytes) -> bool:
        """Verify and adopt a newer list; return True when it replaced the cached one.

        Raises ``InvalidRequest`` for a list that is unsigned, forged or older than the cache.
        """
        try:
            crl = x509.load_der_x509_crl(crl_der)
        except ValueError as exc:
            raise InvalidRequest(f"revocation list is not a DER CRL: {exc}",
                                 code="bad_revocation_list") from None
        number = crl_number(crl)
        if number < self.number:
            raise InvalidRequest(f"revocation list number {number} is older than the cached "
                                 f"{self.number}; refusing a rollback", code="bad_revocation_list")
        if number == self.number:
            return False
        self._accept(crl)
        atomic_write(self.path, crl_der)
        log.info("revocation list %d adopted: %d revoked, next update %s", number,
                 sum(len(s) for s in self._revoked.values()), self.next_update)
        return True

    def revoked_serials(self) -> set[int]:
        return set().union(*self._revoked.values()) if self._revoked else set()

    def usable_until(self) -> datetime | None:
        return self.next_update + self.grace if self.next_update else None

    async def check(self, identity: PeerIdentity) -> None:
        if identity.serial in self._revoked.get(identity.issuer, ()):
            raise PermissionDenied(
                f"certificate {identity.serial_hex} of {identity.uri} is revoked",
                message_ja="この証明書は失効しています", code="certificate_revoked")
        until = self.usable_until()
        if until is None or datetime.now(UTC) > until:
            raise Unavailable(
                "this node has no current revocation list (registry unreachable past the grace "
                "period); refusing calls until it can refresh",
                message_ja="失効リストが更新できないため、呼び出しを受け付けられません",
                code="revocation_list_stale")
