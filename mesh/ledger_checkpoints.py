"""Signed checkpoints of a flow ledger: {node, seq, head hash, time}, signed with the node key.

A checkpoint pins how long the chain was and what its head was at a moment. The connector keeps
its checkpoints and sends them to the registry (``SubmitLedgerCheckpoints``); an auditor holding
one can tell a later copy of the ledger that lost its tail, or was rewritten and re-hashed, from
an honest one (5-2). The document and its checks live in ``mesh`` because both sides need them:
the connector signs and verifies its own, the registry verifies what it is sent and audits
exports against what it holds.

The signature is the node key's over ``canonical_json`` of the checkpoint document, with the
certificate attached. ``verify_checkpoint`` runs the shared checks of
``mesh.signatures.verify_signature_by`` (as agreements do): the certificate chains to a trusted
mesh root, names the node the checkpoint claims, was valid at its time, the signature matches.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from mesh.certs import identity_of
from mesh.clock import from_iso, iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.keystore import NodeKeyStore
from mesh.signatures import (
    SignatureCheckError,
    sign_as_node,
    verify_raw_signature,
    verify_signature_by,
)

KIND = "areamesh.ledger.checkpoint/v1"


@dataclass(frozen=True)
class Checkpoint:
    node: str     # node identity URI, urn:areamesh:org:<id>:node:<name>
    seq: int      # entries in the chain (the head's seq; 0 = empty)
    head: str     # hash of entry ``seq`` (the genesis hash when empty)
    time: str     # ISO 8601 UTC

    def to_json(self) -> dict[str, Any]:
        return {"kind": KIND, "node": self.node, "seq": self.seq, "head": self.head,
                "time": self.time}

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    certificate_pem: str
    signature: str   # base64 of the DER ECDSA signature

    @classmethod
    def sign(cls, keystore: NodeKeyStore, seq: int, head: str) -> SignedCheckpoint:
        """A checkpoint of (``seq``, ``head``) now, signed by this node's key."""
        return cls(*sign_as_node(keystore, lambda node: Checkpoint(node, seq, head, iso(utcnow())),
                                 what="checkpoints", code="checkpoint_signer_unnamed"))

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint.to_json(), "certificate_pem": self.certificate_pem,
                "signature": self.signature}

    @classmethod
    def from_json(cls, doc: Any) -> SignedCheckpoint:
        """Parse a checkpoint document; ``InvalidRequest`` ``malformed_checkpoint`` if it is not one."""
        try:
            body = doc["checkpoint"]
            if body.get("kind") != KIND:
                raise ValueError(f"kind is {body.get('kind')!r}, expected {KIND!r}")
            seq = body["seq"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError("seq must be a non-negative integer")
            fields = (body["node"], body["head"], body["time"], doc["certificate_pem"],
                      doc["signature"])
            if not all(isinstance(f, str) for f in fields):
                raise ValueError("node, head, time, certificate_pem and signature must be strings")
            from_iso(body["time"])
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise InvalidRequest(f"not a ledger checkpoint: {exc}",
                                 message_ja="台帳チェックポイントの形式ではありません",
                                 code="malformed_checkpoint") from None
        return cls(Checkpoint(body["node"], seq, body["head"], body["time"]),
                   doc["certificate_pem"], doc["signature"])


_FAILURES = {
    "malformed": ("checkpoint_signature_invalid", "チェックポイントの署名の形式が正しくありません"),
    "untrusted": ("checkpoint_signer_untrusted",
                  "チェックポイントの署名者の証明書が信頼できる認証局のものではありません"),
    "mismatch": ("checkpoint_signer_mismatch", "チェックポイントの署名者がノードと一致しません"),
    "expired": ("checkpoint_signer_expired", "チェックポイントの時刻に署名者の証明書が有効ではありません"),
    "invalid": ("checkpoint_signature_invalid", "チェックポイントの署名が一致しません（改ざんまたは偽造）"),
}


def verify_checkpoint(signed: SignedCheckpoint, roots: list[x509.Certificate] | None) -> None:
    """Raise ``PermissionDenied`` naming the failed check (``mesh.signatures`` order). Without
    ``roots`` only the node name and the signature against the attached certificate are checked
    (self-consistency: catches an edited checkpoint, not one forged with another certificate)."""
    cp = signed.checkpoint
    try:
        if roots is not None:
            verify_signature_by(signed.certificate_pem, signed.signature, cp.canonical(), roots,
                                expected_uri=cp.node, at=from_iso(cp.time))
        else:
            _self_consistent(signed)
    except SignatureCheckError as exc:
        code, message_ja = _FAILURES[exc.check]
        raise PermissionDenied(f"checkpoint of node {cp.node} at seq {cp.seq}: {exc.message}",
                               message_ja=message_ja, code=code) from None


def _self_consistent(signed: SignedCheckpoint) -> None:
    cp = signed.checkpoint
    try:
        cert = x509.load_pem_x509_certificate(signed.certificate_pem.encode())
        raw = base64.b64decode(signed.signature, validate=True)
    except (ValueError, TypeError):
        raise SignatureCheckError("malformed", "the certificate or the signature cannot be read"
                                  ) from None
    ident = identity_of(cert)
    if ident is None or ident.uri != cp.node:
        signer = ident.uri if ident else "an unnamed certificate"
        raise SignatureCheckError("mismatch", f"signed by {signer}, not by the node the checkpoint "
                                  "names", ident)
    try:
        verify_raw_signature(cert.public_key(), raw, cp.canonical())
    except InvalidSignature:
        raise SignatureCheckError("invalid", "the signature does not match the checkpoint: it was "
                                  "changed after signing or the signature is forged", ident) from None
