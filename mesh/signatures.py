"""Checking a detached signature made with a node key, together with the certificate that made it.

Signed documents in the mesh (usage agreements, identity assertions) carry the signer's node
certificate PEM and a base64 signature over the document's canonical bytes. ``verify_signature_by``
runs the checks every such document needs, always in the same order:

1. ``malformed``  — the certificate PEM or the base64 signature cannot be read;
2. ``untrusted``  — the certificate was not issued by any of the trusted mesh roots;
3. ``mismatch``   — the certificate names no node, or not the expected node URI;
4. ``expired``    — the certificate was not valid at the time the document was made;
5. ``invalid``    — the signature does not verify over the bytes (tampered or forged).

It raises ``SignatureCheckError`` naming the failed ``check``; each caller turns that into its own
``mesh.errors`` error with its own stable code and wording, so documents keep distinct codes while
sharing one implementation.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mesh.certs import PeerIdentity, identity_of, to_pem
from mesh.errors import PermissionDenied

if TYPE_CHECKING:
    from mesh.keystore import NodeKeyStore

CHECKS = ("malformed", "untrusted", "mismatch", "expired", "invalid")


class SignatureCheckError(Exception):
    """One failed check (see ``CHECKS``); ``identity`` is the signer named by the certificate,
    when the certificate could be read and names a node."""

    def __init__(self, check: str, message: str, identity: PeerIdentity | None = None) -> None:
        super().__init__(message)
        self.check = check
        self.message = message
        self.identity = identity


def verify_raw_signature(public_key: object, signature: bytes, data: bytes) -> None:
    """Verify ``signature`` over ``data`` (ECDSA P-256/SHA-256 or Ed25519); raise
    ``InvalidSignature`` otherwise."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
    else:
        raise InvalidSignature("unsupported key type")


def issued_by(cert: x509.Certificate, root: x509.Certificate) -> bool:
    """True when ``root`` directly issued ``cert`` (mesh node certificates have no intermediates)."""
    try:
        cert.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def verify_signature_by(cert_pem: str | bytes, signature_b64: str, data: bytes,
                        roots: list[x509.Certificate], *, expected_uri: str | None = None,
                        at: datetime | None = None) -> tuple[x509.Certificate, PeerIdentity]:
    """Check that the node certified by ``cert_pem`` signed ``data``; return its certificate and
    identity. ``expected_uri`` pins the signer's node URI; ``at`` (aware) is when the document
    was made, at which the certificate must have been valid. Raises ``SignatureCheckError``."""
    try:
        cert = x509.load_pem_x509_certificate(
            cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
        raw = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError, AttributeError):
        raise SignatureCheckError("malformed", "the certificate or the signature cannot be read"
                                  ) from None
    if not any(issued_by(cert, root) for root in roots):
        raise SignatureCheckError("untrusted",
                                  "the signer's certificate was not issued by a trusted mesh CA")
    ident = identity_of(cert)
    if ident is None:
        raise SignatureCheckError("mismatch", "the signer's certificate names no mesh node")
    if expected_uri is not None and ident.uri != expected_uri:
        raise SignatureCheckError("mismatch", f"the signature is by {ident.uri}, expected "
                                  f"{expected_uri}", ident)
    if at is not None and not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise SignatureCheckError("expired", f"the signer's certificate was not valid at "
                                  f"{at.isoformat()}", ident)
    try:
        verify_raw_signature(cert.public_key(), raw, data)
    except InvalidSignature:
        raise SignatureCheckError("invalid", "the signature does not match the document: it was "
                                  "changed after signing or the signature is forged", ident) from None
    return cert, ident


class _Canonical(Protocol):
    def canonical(self) -> bytes: ...


D = TypeVar("D", bound=_Canonical)


def sign_as_node(keystore: NodeKeyStore, build: Callable[[str], D], *, what: str, code: str
                 ) -> tuple[D, str, str]:
    """``build(node_uri)`` for this node, signed by its key: (document, certificate PEM, base64
    signature of the document's canonical form). A certificate that names no node cannot sign
    ``what``: ``PermissionDenied`` with ``code``."""
    cert = keystore.certificate()
    ident = identity_of(cert)
    if ident is None:
        raise PermissionDenied(f"this node's certificate names no node; cannot sign {what}",
                               message_ja="ノード証明書にノード名がないため署名できません", code=code)
    doc = build(ident.uri)
    return doc, to_pem(cert).decode(), base64.b64encode(keystore.sign(doc.canonical())).decode()
