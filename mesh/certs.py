"""Reading certificates: fingerprints, node identities, validity. No private keys here."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from mesh.ids import parse_node_identity_uri


def fingerprint(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's DER encoding (what join tokens pin)."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_pem_bundle(data: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM bundle (raises ``ValueError`` on garbage or an empty bundle)."""
    certs = x509.load_pem_x509_certificates(data)
    if not certs:
        raise ValueError("no certificate in PEM data")
    return certs


def to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def uri_sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


@dataclass(frozen=True, slots=True)
class PeerIdentity:
    """Who is on the other end, as proven by a verified certificate."""

    participant_id: str
    node_name: str
    uri: str
    serial: int
    issuer: str
    not_after: datetime
    #: "" for a node of the verifying node's own mesh; a federated mesh's id otherwise (then
    #: ``uri`` is the mesh-qualified ``urn:areamesh:mesh:<mesh>:org:<id>:node:<name>``)
    mesh_id: str = ""

    @property
    def serial_hex(self) -> str:
        return format(self.serial, "x")

    def __str__(self) -> str:
        return self.uri


def identity_of(cert: x509.Certificate) -> PeerIdentity | None:
    """The node identity named by ``cert``'s URI SAN, or None when it names no node."""
    for uri in uri_sans(cert):
        parsed = parse_node_identity_uri(uri)
        if parsed:
            return PeerIdentity(
                participant_id=parsed[0], node_name=parsed[1], uri=uri,
                serial=cert.serial_number, issuer=cert.issuer.rfc4514_string(),
                not_after=cert.not_valid_after_utc)
    return None


@functools.lru_cache(maxsize=4096)
def identity_from_pem(pem: bytes) -> PeerIdentity | None:
    """Cached ``identity_of`` for the PEM gRPC hands us on every call."""
    return identity_of(x509.load_pem_x509_certificate(pem))


def remaining_fraction(cert: x509.Certificate, now: datetime | None = None) -> float:
    """How much of the certificate's lifetime is left, 0.0–1.0."""
    now = now or datetime.now(UTC)
    total = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    left = (cert.not_valid_after_utc - now).total_seconds()
    return max(0.0, min(1.0, left / total)) if total > 0 else 0.0
