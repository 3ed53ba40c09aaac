"""Verification policy for identity assertions (the document itself: ``mesh.identity_assertions``).

``verify_assertion`` accepts an assertion only when, in this order:

1. it parses (``malformed_assertion``);
2. it is fresh: its lifetime is at most 10 minutes (``assertion_lifetime_invalid``), it was
   issued no later than now + 60 s of clock skew (``assertion_not_yet_valid``) and has not
   expired (``assertion_expired``) — checked first, as the likeliest failure in practice (a
   resident who took too long) and the cheapest;
3. its signature was made by a node certificate issued by a trusted mesh root
   (``assertion_signer_untrusted``), naming the node in ``issuer`` (``assertion_issuer_mismatch``),
   valid when the assertion was issued (``assertion_signer_expired``), and the signature matches
   the canonical bytes (``assertion_signature_invalid``); the certificate is not revoked (the
   revocation checker's own codes);
4. ``platform`` is the signer's own participant (``assertion_platform_mismatch``), and that
   participant is a registered identity provider (``not_identity_provider``);
5. it was issued for this purpose, link or unlink (``assertion_wrong_purpose``);
6. its levels are 1–3 (``level_out_of_range``) and within what the provider may assert
   (``level_exceeds_provider_max``).

Replay (``assertion_replayed``) is checked by the service inside the transaction that spends
the assertion id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509

from mesh.certs import PeerIdentity
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.identity_assertions import MAX_LIFETIME, IdentityAssertion, SignedAssertion, check_level
from mesh.revocation import RevocationChecker
from mesh.signatures import SignatureCheckError, verify_signature_by
from registry.identity.store import Provider

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


class ProviderLookup(Protocol):
    async def provider(self, participant_id: str) -> Provider | None:
        """The registered identity provider with this participant id, or None."""


@dataclass(frozen=True)
class VerifiedAssertion:
    """An assertion that passed every check but replay, with who signed it."""

    assertion: IdentityAssertion
    signer: PeerIdentity
    provider: Provider

    @property
    def platform(self) -> str:
        return self.assertion.platform


async def verify_assertion(signed: SignedAssertion, *, roots: list[x509.Certificate],
                           providers: ProviderLookup, purpose: str, now: datetime,
                           revocation: RevocationChecker | None = None) -> VerifiedAssertion:
    """Apply checks 2–6 above to a parsed assertion; raise a ``mesh.errors`` error naming the
    first that fails (``details`` carries the platform and local id it was about)."""
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
    provider = await providers.provider(signer.participant_id)
    if provider is None:
        raise PermissionDenied(
            f"participant {signer.participant_id} is not a registered identity provider",
            message_ja=f"参加者 {signer.participant_id} は登録された個人認証サービス（IdP）ではありません",
            code="not_identity_provider", details=about)
    if a.purpose != purpose:
        raise InvalidRequest(
            f"the assertion was issued to {a.purpose}, not to {purpose}",
            message_ja=f"このアサーションは「{a.purpose}」用に発行されたもので、「{purpose}」には使えません",
            code="assertion_wrong_purpose", details=about)
    for name, value, limit in (("ial", a.ial, provider.max_ial), ("aal", a.aal, provider.max_aal)):
        try:
            check_level(name, value)
        except InvalidRequest as exc:
            exc.details.update(about)
            raise
        if value > limit:
            label_ja = "身元確認レベル" if name == "ial" else "当人認証レベル"
            raise PermissionDenied(
                f"{provider.platform_name} ({provider.participant_id}) may assert {name} up to "
                f"{limit}, but the assertion says {value}",
                message_ja=(f"{provider.platform_name} が表明できる{label_ja}は{limit}までです"
                            f"（表明値 {value}）"),
                code="level_exceeds_provider_max",
                details={**about, "field": name, "value": value, "max": limit})
    return VerifiedAssertion(a, signer, provider)


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
