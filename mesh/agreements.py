"""Usage agreements: the canonical document both connectors sign (DESIGN §6).

An agreement names the dataset, the offer and its policy, both parties by their node identity
URIs, the purpose and the validity. Its bytes are ``canonical_json`` of that document, so both
sides sign the same bytes; its digest (SHA-256) is what the registry notarises.

A ``SignedAgreement`` carries each party's signature together with the certificate that signed
it. ``verify_signed`` checks, for each party present: the certificate chains to a trusted mesh
root, it names exactly that party, it was valid when the agreement was made, and the signature
verifies over the canonical bytes. Any failure says which party and which check.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from mesh.certs import PeerIdentity, identity_of, to_pem
from mesh.clock import from_iso, iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.federation import absolute_uri, claimed_mesh, roots_for
from mesh.keystore import NodeKeyStore
from mesh.signatures import SignatureCheckError, verify_signature_by

PARTIES = ("provider", "consumer")


@dataclass(frozen=True)
class Agreement:
    dataset_id: str
    offer_id: str
    policy: dict[str, Any]
    provider: str             # node identity URI
    consumer: str             # node identity URI
    purpose: str
    created: str              # ISO 8601, UTC
    expires: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @classmethod
    def new(cls, *, dataset_id: str, offer_id: str, policy: dict[str, Any], provider: str,
            consumer: str, purpose: str, expires: datetime | None = None) -> Agreement:
        return cls(dataset_id=dataset_id, offer_id=offer_id, policy=policy, provider=provider,
                   consumer=consumer, purpose=purpose, created=iso(utcnow()),
                   expires=iso(expires) if expires else None)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Agreement:
        try:
            return cls(**{k: doc[k] for k in ("id", "dataset_id", "offer_id", "policy",
                                              "provider", "consumer", "purpose", "created")},
                       expires=doc.get("expires"))
        except (KeyError, TypeError) as exc:
            raise InvalidRequest(f"agreement document is incomplete: {exc}",
                                 message_ja="合意文書の項目が不足しています",
                                 code="malformed_agreement") from None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.canonical()).hexdigest()

    def party_uri(self, party: str) -> str:
        return self.provider if party == "provider" else self.consumer


@dataclass(frozen=True)
class PartySignature:
    uri: str
    certificate_pem: str
    signature: str  # base64

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class SignedAgreement:
    agreement: Agreement
    signatures: dict[str, PartySignature]

    def to_json(self) -> dict[str, Any]:
        return {"agreement": self.agreement.to_json(),
                "signatures": {k: v.to_json() for k, v in self.signatures.items()}}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SignedAgreement:
        if not isinstance(doc, dict) or not isinstance(doc.get("signatures"), dict):
            raise InvalidRequest("signed agreement must have 'agreement' and 'signatures'",
                                 code="malformed_agreement")
        try:
            sigs = {k: PartySignature(**v) for k, v in doc["signatures"].items() if k in PARTIES}
        except TypeError as exc:
            raise InvalidRequest(f"malformed signature entry: {exc}",
                                 code="malformed_agreement") from None
        return cls(Agreement.from_json(doc.get("agreement") or {}), sigs)

    def with_signature(self, party: str, keystore: NodeKeyStore) -> SignedAgreement:
        """Add ``party``'s signature made with this node's key (the node must be that party)."""
        if party not in PARTIES:
            raise ValueError(f"party must be one of {PARTIES}")
        cert = keystore.certificate()
        ident = identity_of(cert)
        expected = self.agreement.party_uri(party)
        if ident is None or expected not in (ident.uri, absolute_uri(cert)):
            raise PermissionDenied(f"this node ({ident.uri if ident else 'unknown'}) is not the "
                                   f"{party} {expected}")
        signature = base64.b64encode(keystore.sign(self.agreement.canonical())).decode()
        return SignedAgreement(self.agreement, {
            **self.signatures,
            party: PartySignature(expected, to_pem(cert).decode(), signature)})


# What each failed check means for an agreement: (code, English, Japanese); "{party}" is filled in.
_FAILURES = {
    "malformed": ("agreement_signature_invalid", "the {party}'s signature entry is malformed", None),
    "untrusted": ("agreement_signer_untrusted",
                  "the {party}'s certificate was not issued by a trusted mesh CA",
                  "署名者の証明書が信頼できる認証局のものではありません"),
    "expired": ("agreement_signer_expired",
                "the {party}'s certificate was not valid when the agreement was made ({created})",
                None),
    "invalid": ("agreement_signature_invalid",
                "the {party}'s signature does not match agreement {id}: the document was changed "
                "after signing or the signature is forged",
                "署名が合意文書と一致しません（改ざんまたは偽造）"),
}


def verify_signed(signed: SignedAgreement, roots: list[x509.Certificate], *,
                  require: tuple[str, ...] = PARTIES,
                  federated: dict[str, list[x509.Certificate]] | None = None) -> None:
    """Check every required party's signature; raise ``PermissionDenied`` naming the failure.

    ``roots`` are this mesh's; a party named mesh-qualified (an agreement across meshes,
    ``mesh.federation``) must have signed with a certificate of that mesh's roots (``roots`` when
    it is this mesh, else ``federated[mesh]``) naming that mesh. The checks
    (``mesh.signatures``) run in this order: readable, issued by a trusted root, names exactly
    that party, valid when the agreement was made, signature matches."""
    agreement = signed.agreement
    made = from_iso(agreement.created)
    data = agreement.canonical()
    for party in require:
        sig = signed.signatures.get(party)
        expected = agreement.party_uri(party)
        if sig is None:
            raise PermissionDenied(f"the {party} has not signed agreement {agreement.id}",
                                   message_ja=f"合意 {agreement.id} に{party}の署名がありません",
                                   code="agreement_unsigned")
        party_roots, node_uri, mesh_id = roots_for(expected, roots, federated or {})
        try:
            cert, ident = verify_signature_by(sig.certificate_pem, sig.signature, data,
                                              party_roots, expected_uri=node_uri, at=made)
            if mesh_id is not None and claimed_mesh(cert) != mesh_id:
                raise SignatureCheckError("mismatch", f"the signer's certificate does not name "
                                          f"mesh {mesh_id}", ident)
        except SignatureCheckError as exc:
            # A wrong claimed URI outranks the checks that come after the name check.
            if exc.check == "mismatch" or (exc.check in ("expired", "invalid")
                                           and sig.uri != expected):
                raise _mismatch(party, agreement, expected, exc.identity) from None
            code, message, message_ja = _FAILURES[exc.check]
            raise PermissionDenied(message.format(party=party, created=agreement.created,
                                                  id=agreement.id),
                                   message_ja=message_ja, code=code) from None
        if sig.uri != expected:
            raise _mismatch(party, agreement, expected, ident)


def _mismatch(party: str, agreement: Agreement, expected: str,
              ident: PeerIdentity | None) -> PermissionDenied:
    return PermissionDenied(
        f"the {party} signature is by {ident.uri if ident else 'an unnamed certificate'}, "
        f"but the {party} of agreement {agreement.id} is {expected}",
        message_ja="署名者が合意の当事者と一致しません", code="agreement_signer_mismatch")
