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
from datetime import datetime
from typing import Protocol

from cryptography import x509

from mesh.certs import PeerIdentity
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.identity_assertions import (
    IdentityAssertion,
    SignedAssertion,
    check_level,
    check_purpose,
    check_signed_assertion,
)
from mesh.revocation import RevocationChecker
from registry.identity.store import Provider


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
    signer = await check_signed_assertion(signed, roots=roots, now=now, revocation=revocation)
    provider = await providers.provider(signer.participant_id)
    if provider is None:
        raise PermissionDenied(
            f"participant {signer.participant_id} is not a registered identity provider",
            message_ja=f"参加者 {signer.participant_id} は登録された個人認証サービス（IdP）ではありません",
            code="not_identity_provider", details=about)
    check_purpose(a, purpose)
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
