"""Identity assertions: what a platform's identity provider (IdP) signs about one resident.

An identity provider is a mesh participant; its connector node signs, with its node key, a
short-lived statement: "on platform <participant id>, local id <x> belongs to a resident we
identified at 身元確認レベル (IAL) n and who just authenticated at 当人認証レベル (AAL) m",
optionally with the resident's 基本4情報 (name, kana, birth date, sex, address). The registry's
identity service verifies two such assertions to link a resident's ids across platforms (DESIGN
§8, appendix 5-9/5-10) and one to unlink; the platform's own connector verifies one with
purpose ``consent`` before it records a consent relayed over the mesh.

The document is JSON; its signed bytes are ``canonical_json`` of the document. The wire form is
``{"assertion": {...}, "certificate_pem": "...", "signature": "<base64>"}``. This module is on
the connector side too (the IdP issues here), with ``check_signed_assertion``: the checks every
verifier makes (freshness, signature, revocation, platform). The rest of the policy lives with
each verifier: registered providers and level limits in ``registry.identity``, replay there and
in the connector's consent store.
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from mesh.certs import PeerIdentity, identity_of, to_pem
from mesh.clock import from_iso, iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.keystore import NodeKeyStore
from mesh.revocation import RevocationChecker
from mesh.signatures import SignatureCheckError, verify_signature_by

ASSERTION_TYPE = "areamesh.identity-assertion/v1"
DEFAULT_LIFETIME = timedelta(minutes=5)
MAX_LIFETIME = timedelta(minutes=10)
LEVELS = (1, 2, 3)
PURPOSES = ("link", "unlink", "consent")
BASIC4_FIELDS = ("name", "name_kana", "birth_date", "sex", "address")
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_LOCAL_ID = 256


def _malformed(what: str) -> InvalidRequest:
    return InvalidRequest(f"identity assertion is malformed: {what}",
                          message_ja=f"本人確認アサーションの形式が正しくありません：{what}",
                          code="malformed_assertion", details={"problem": what})


def check_level(name: str, value: object) -> int:
    """``value`` as a level 1–3, else ``InvalidRequest`` ``level_out_of_range``."""
    if isinstance(value, bool) or not isinstance(value, int) or value not in LEVELS:
        label_ja = "身元確認レベル" if name == "ial" else "当人認証レベル"
        raise InvalidRequest(f"{name} must be 1, 2 or 3, got {value!r}",
                             message_ja=f"{label_ja}は1〜3でなければなりません（{value!r}）",
                             code="level_out_of_range", details={"field": name, "value": value})
    return value


@dataclass(frozen=True)
class IdentityAssertion:
    """One IdP statement about one resident. Times are ISO 8601 UTC text; ``basic4`` holds the
    raw 基本4情報 as the IdP has them (normalisation is the verifier's job)."""

    issuer: str               # node identity URI of the signing IdP node
    platform: str             # the IdP's participant id: whose local ids these are
    local_id: str
    ial: int                  # 身元確認レベル
    aal: int                  # 当人認証レベル
    jti: str
    issued_at: str
    expires_at: str
    purpose: str = "link"
    basic4: dict[str, str] | None = None
    type: str = ASSERTION_TYPE

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        if self.basic4 is None:
            del doc["basic4"]
        return doc

    def canonical(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def issued(self) -> datetime:
        return from_iso(self.issued_at)

    @property
    def expires(self) -> datetime:
        return from_iso(self.expires_at)

    @classmethod
    def from_json(cls, doc: Any) -> IdentityAssertion:
        """Parse structurally (types, known fields, readable times); levels and freshness are
        checked by the verifier, which knows the provider and the time."""
        if not isinstance(doc, dict):
            raise _malformed("the assertion must be a JSON object")
        if doc.get("type") != ASSERTION_TYPE:
            raise _malformed(f"type must be {ASSERTION_TYPE!r}, got {doc.get('type')!r}")
        unknown = sorted(set(doc) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise _malformed(f"unknown field(s) {', '.join(unknown)}")
        for key in ("issuer", "platform", "local_id", "jti", "issued_at", "expires_at", "purpose"):
            if not isinstance(doc.get(key), str) or not doc[key]:
                raise _malformed(f"{key} must be a non-empty string")
        if len(doc["local_id"]) > MAX_LOCAL_ID:
            raise _malformed(f"local_id is longer than {MAX_LOCAL_ID} characters")
        if doc["purpose"] not in PURPOSES:
            raise _malformed(f"purpose must be one of {', '.join(PURPOSES)}")
        for key in ("ial", "aal"):
            if isinstance(doc.get(key), bool) or not isinstance(doc.get(key), int):
                raise _malformed(f"{key} must be an integer")
        basic4 = doc.get("basic4")
        if basic4 is not None and not (isinstance(basic4, dict) and all(
                k in BASIC4_FIELDS and isinstance(v, str) for k, v in basic4.items())):
            raise _malformed(f"basic4 must map {', '.join(BASIC4_FIELDS)} to strings")
        for key in ("issued_at", "expires_at"):
            try:
                when = datetime.fromisoformat(doc[key])
            except ValueError:
                raise _malformed(f"{key} is not an ISO 8601 time") from None
            if when.utcoffset() is None:
                raise _malformed(f"{key} must carry a UTC offset")
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__ if k in doc})


@dataclass(frozen=True)
class SignedAssertion:
    """An assertion with the signer's node certificate (PEM) and base64 signature."""

    assertion: IdentityAssertion
    certificate_pem: str
    signature: str

    def to_json(self) -> dict[str, Any]:
        return {"assertion": self.assertion.to_json(), "certificate_pem": self.certificate_pem,
                "signature": self.signature}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False)

    @classmethod
    def parse(cls, data: str | bytes | dict[str, Any]) -> SignedAssertion:
        """From the wire form (JSON text, bytes or an already decoded object)."""
        if isinstance(data, str | bytes):
            if len(data) > MAX_DOCUMENT_BYTES:
                raise _malformed(f"document is larger than {MAX_DOCUMENT_BYTES} bytes")
            try:
                data = json.loads(data)
            except (ValueError, UnicodeDecodeError):
                raise _malformed("not JSON") from None
        if not isinstance(data, dict) or set(data) != {"assertion", "certificate_pem", "signature"}:
            raise _malformed("expected exactly 'assertion', 'certificate_pem' and 'signature'")
        if not isinstance(data["certificate_pem"], str) or not isinstance(data["signature"], str):
            raise _malformed("certificate_pem and signature must be strings")
        return cls(IdentityAssertion.from_json(data["assertion"]), data["certificate_pem"],
                   data["signature"])


def sign_assertion(assertion: IdentityAssertion, keystore: NodeKeyStore) -> SignedAssertion:
    """Sign ``assertion`` as it is with this node's key (no checks: see ``issue_assertion``)."""
    signature = base64.b64encode(keystore.sign(assertion.canonical())).decode()
    return SignedAssertion(assertion, to_pem(keystore.certificate()).decode(), signature)


def issue_assertion(keystore: NodeKeyStore, *, local_id: str, ial: int, aal: int,
                    basic4: dict[str, str] | None = None, purpose: str = "link",
                    lifetime: timedelta = DEFAULT_LIFETIME,
                    now: datetime | None = None) -> SignedAssertion:
    """Issue a signed assertion as this node's participant (the IdP) about ``local_id``.

    Call it only right after the resident authenticated at ``aal``: the assertion is short-lived
    (default 5 minutes, at most 10) and single-use at the registry."""
    ident = identity_of(keystore.certificate())
    if ident is None:
        raise ValueError("this node's certificate names no mesh node; enrol it first")
    if not local_id or len(local_id) > MAX_LOCAL_ID:
        raise ValueError(f"local_id must be 1–{MAX_LOCAL_ID} characters")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}")
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be positive and at most {MAX_LIFETIME}")
    if basic4 is not None and set(basic4) - set(BASIC4_FIELDS):
        raise ValueError(f"basic4 keys must be among {BASIC4_FIELDS}")
    check_level("ial", ial)
    check_level("aal", aal)
    issued = now or utcnow()
    assertion = IdentityAssertion(
        issuer=ident.uri, platform=ident.participant_id, local_id=local_id, ial=ial, aal=aal,
        jti=secrets.token_urlsafe(18), issued_at=iso(issued), expires_at=iso(issued + lifetime),
        purpose=purpose, basic4=dict(basic4) if basic4 is not None else None)
    return sign_assertion(assertion, keystore)


CLOCK_SKEW = timedelta(seconds=60)

# check → (error class, code, English, Japanese)
_SIGNATURE_FAILURES: dict[str, tuple[type[InvalidRequest | PermissionDenied], str, str, str]] = {
    "malformed": (InvalidRequest, "malformed_assertion",
                  "the assertion's certificate or signature cannot be read",
                  "アサーションの証明書または署名を読み取れません"),
    "untrusted": (PermissionDenied, "assertion_signer_untrusted",
                  "the assertion was signed with a certificate not issued by a trusted mesh CA",
                  "アサーションの署名者の証明書が信頼できる認証局のものではありません"),
    "mismatch": (PermissionDenied, "assertion_issuer_mismatch",
                 "the assertion's signer is not the node named as its issuer",
                 "アサーションの署名者が発行者として記載されたノードと一致しません"),
    "expired": (PermissionDenied, "assertion_signer_expired",
                "the signer's certificate was not valid when the assertion was issued",
                "アサーション発行時に署名者の証明書が有効ではありませんでした"),
    "invalid": (PermissionDenied, "assertion_signature_invalid",
                "the assertion's signature does not match it: the assertion was changed after "
                "signing or the signature is forged",
                "アサーションの署名が内容と一致しません（改ざんまたは偽造）"),
}


def check_purpose(a: IdentityAssertion, purpose: str) -> None:
    """``a`` was issued for ``purpose`` (link, unlink, consent), else ``assertion_wrong_purpose``."""
    if a.purpose != purpose:
        raise InvalidRequest(
            f"the assertion was issued to {a.purpose}, not to {purpose}",
            message_ja=f"このアサーションは「{a.purpose}」用に発行されたもので、「{purpose}」には使えません",
            code="assertion_wrong_purpose",
            details={"platform": a.platform, "local_id": a.local_id, "jti": a.jti})


async def check_signed_assertion(signed: SignedAssertion, *, roots: list[x509.Certificate],
                                 now: datetime, revocation: RevocationChecker | None = None
                                 ) -> PeerIdentity:
    """The checks every verifier makes, in this order: fresh (lifetime, not yet valid,
    expired), signed by a node certificate of a trusted mesh root naming ``issuer`` and valid
    when issued, not revoked, and speaking for the signer's own platform. Returns the signer.
    What else must hold (a registered provider, purpose, level limits, replay) is the caller's."""
    a = signed.assertion
    about = {"platform": a.platform, "local_id": a.local_id, "jti": a.jti}
    _check_freshness(a, now, about)
    try:
        _cert, signer = verify_signature_by(signed.certificate_pem, signed.signature, a.canonical(),
                                            roots, expected_uri=a.issuer, at=a.issued)
    except SignatureCheckError as exc:
        cls, code, message, message_ja = _SIGNATURE_FAILURES[exc.check]
        raise cls(f"{message} ({exc.message})", message_ja=message_ja, code=code,
                  details=about) from None
    if revocation is not None:
        await revocation.check(signer)
    if a.platform != signer.participant_id:
        raise PermissionDenied(
            f"the assertion speaks for platform {a.platform}, but it was signed by participant "
            f"{signer.participant_id}; a provider may only assert its own platform's ids",
            message_ja="アサーションの基盤が署名者の参加者と一致しません（自らの基盤のIDのみ表明できます）",
            code="assertion_platform_mismatch", details=about)
    return signer


def _check_freshness(a: IdentityAssertion, now: datetime, about: dict[str, str]) -> None:
    issued, expires = a.issued, a.expires
    if not timedelta(0) < expires - issued <= MAX_LIFETIME:
        raise InvalidRequest(
            f"the assertion's lifetime ({issued.isoformat()} to {expires.isoformat()}) must be "
            f"positive and at most {int(MAX_LIFETIME.total_seconds() // 60)} minutes",
            message_ja="アサーションの有効期間は10分以内でなければなりません",
            code="assertion_lifetime_invalid", details=about)
    if issued > now + CLOCK_SKEW:
        raise PermissionDenied(
            f"the assertion is issued in the future ({a.issued_at}); check the provider's clock",
            message_ja="アサーションの発行時刻が未来です（IdPの時刻設定を確認してください）",
            code="assertion_not_yet_valid", details=about)
    if now >= expires:
        raise PermissionDenied(
            f"the assertion expired at {a.expires_at}; ask the resident to sign in again at "
            "the identity provider",
            message_ja="アサーションの有効期限が切れています。IdPで再度ログインしてください",
            code="assertion_expired", details={**about, "expires_at": a.expires_at})
