"""ConsentService: residents' consent for the mesh (the resident portal's HTTP API is portal_api.py).

A receiving participant (say 大阪府's service) asks one of 姫路市's residents for consent on its
own portal. The resident signs in at 姫路市's identity provider, which issues a short-lived
assertion with purpose ``consent`` about their 姫路市 id; the service relays it here, to the
connector holding the resident's data, with the consent's terms. This connector records the
consent only when the assertion

- passes the checks every verifier makes (fresh, signed by a node of the mesh CA naming its
  issuer, not revoked, speaking for the signer's own platform: ``check_signed_assertion``);
- speaks for this connector's own platform (``assertion_other_platform``) and for consent
  (``assertion_wrong_purpose``), with levels 1–3 (``level_out_of_range``);
- has not been used before (``assertion_replayed``, spent in the grant's own transaction);

and the resident is in the named personal dataset (``unknown_resident``). The participant that
receives the data is always the caller, from its certificate. A caller sees and withdraws only
the consents given to itself. The store is opened on first use (``DataPlane.personal``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import TYPE_CHECKING

import grpc
from cryptography import x509

from connector.data_plane import DataPlane
from mesh.clock import utcnow
from mesh.errors import InvalidRequest, NotFound, PermissionDenied
from mesh.grpc_auth import current_peer
from mesh.identity_assertions import (
    SignedAssertion,
    check_level,
    check_purpose,
    check_signed_assertion,
)
from mesh.ids import parse_node_identity_uri
from mesh.proto.areamesh.v1 import consent_pb2, consent_pb2_grpc
from mesh.revocation import RevocationChecker

if TYPE_CHECKING:
    from pathlib import Path

    from connector.consent.store import Consent, ConsentProof

log = logging.getLogger("areamesh.connector.consent")
SERVICE_NAME = consent_pb2.DESCRIPTOR.services_by_name["ConsentService"].full_name
MAX_ITEMS = 200


def consent_record(c: Consent) -> consent_pb2.ConsentRecord:
    return consent_pb2.ConsentRecord(
        id=c.id, resident=c.resident, dataset_id=c.dataset_id, participant=c.participant,
        service_id=c.service_id or "", component_id=c.component_id or "", purpose=c.purpose,
        items=list(c.items or ()), all_items=c.items is None, granted_at=c.granted_at,
        expires_at=c.expires_at or "", withdrawn_at=c.withdrawn_at or "", status=c.status())


class ConsentGrpcService(consent_pb2_grpc.ConsentServiceServicer):
    def __init__(self, data_dir: Path, data_plane: DataPlane, own_uri: str,
                 roots: Callable[[], list[x509.Certificate]],
                 revocation: RevocationChecker | None) -> None:
        own = parse_node_identity_uri(own_uri)
        assert own is not None, "a serving connector's own identity is a node URI"
        self.data_dir = data_dir
        self.data_plane = data_plane
        self.platform = own[0]
        self.roots = roots
        self.revocation = revocation

    async def _proof(self, raw: bytes) -> tuple[str, ConsentProof]:
        """The resident's id and the proof to spend, from a verified consent assertion."""
        from connector.consent.store import ConsentProof

        if not raw:
            raise InvalidRequest("a consent relayed over the mesh needs the resident's assertion "
                                 "(resident_assertion)",
                                 message_ja="本人確認アサーションが必要です", code="assertion_required")
        signed = SignedAssertion.parse(raw)
        signer = await check_signed_assertion(signed, roots=self.roots(), now=utcnow(),
                                              revocation=self.revocation)
        a = signed.assertion
        about = {"platform": a.platform, "local_id": a.local_id, "jti": a.jti}
        if a.platform != self.platform:
            raise PermissionDenied(
                f"the assertion is about a resident of platform {a.platform}; this connector "
                f"records consent only for its own platform {self.platform}'s residents",
                message_ja=f"このコネクタ（{self.platform}）の住民についてのアサーションではありません",
                code="assertion_other_platform", details=about)
        check_purpose(a, "consent")
        check_level("ial", a.ial)
        check_level("aal", a.aal)
        evidence = {"assertion": a.jti, "issuer": signer.uri, "ial": a.ial, "aal": a.aal,
                    "issued_at": a.issued_at, "relayed_by": current_peer().uri}
        return a.local_id, ConsentProof(a.jti, a.expires_at, evidence)

    async def GrantConsent(self, request: consent_pb2.GrantConsentRequest,
                           context: grpc.aio.ServicerContext) -> consent_pb2.ConsentRecord:
        from connector.consent.cli import known_in

        peer = current_peer()
        if not request.purpose:
            raise InvalidRequest("'purpose' is required", message_ja="利用目的は必須です",
                                 code="invalid_consent", details={"field": "purpose"})
        if len(request.items) > MAX_ITEMS or not all(request.items):
            raise InvalidRequest(f"'items' must be 1–{MAX_ITEMS} non-empty column names, or none "
                                 "for all items", message_ja="対象項目の指定が正しくありません",
                                 code="invalid_items")
        resident, proof = await self._proof(request.resident_assertion)
        dataset = request.dataset_id or "*"
        store, _ = await self.data_plane.personal()
        consent_id = await store.grant(
            resident, participant=peer.participant_id, purpose=request.purpose, dataset_id=dataset,
            service_id=request.service_id or None, component_id=request.component_id or None,
            items=list(request.items) if request.items else None,
            expires_at=request.expires_at.ToDatetime(tzinfo=UTC)
            if request.HasField("expires_at") else None,
            known_subject=known_in(self.data_dir, dataset), actor=f"mesh:{peer.uri}", proof=proof)
        log.info("consent %s recorded for %s over the mesh", consent_id, peer.participant_id,
                 extra={"peer": peer.uri, "dataset": dataset})
        return consent_record(await store.get(consent_id))

    async def WithdrawConsent(self, request: consent_pb2.WithdrawConsentRequest,
                              context: grpc.aio.ServicerContext
                              ) -> consent_pb2.WithdrawConsentResponse:
        peer = current_peer()
        store, _ = await self.data_plane.personal()
        reason = request.reason[:500]
        if request.consent_id:
            consent = await store.get(request.consent_id)
            if consent.participant != peer.participant_id:  # not the caller's: as if unknown
                raise NotFound(f"no consent {request.consent_id} was given to you",
                               message_ja=f"同意 {request.consent_id} は見つかりません",
                               code="unknown_consent")
            ids = await store.withdraw(request.consent_id, reason=reason, actor=f"mesh:{peer.uri}")
        else:
            if not request.resident:
                raise InvalidRequest("withdraw needs a consent id or a resident",
                                     message_ja="撤回には同意IDまたは住民IDが必要です",
                                     code="withdraw_target_missing")
            ids = await store.withdraw(
                resident=request.resident, participant=peer.participant_id,
                purpose=request.purpose or None, dataset_id=request.dataset_id or None,
                service_id=request.service_id or None, component_id=request.component_id or None,
                reason=reason, actor=f"mesh:{peer.uri}")
        log.info("%d consent(s) withdrawn by %s over the mesh", len(ids), peer.participant_id)
        return consent_pb2.WithdrawConsentResponse(withdrawn=ids)

    async def ListConsents(self, request: consent_pb2.ListConsentsRequest,
                           context: grpc.aio.ServicerContext) -> consent_pb2.ListConsentsResponse:
        store, _ = await self.data_plane.personal()
        found = await store.list(resident=request.resident or None,
                                 participant=current_peer().participant_id,
                                 dataset_id=request.dataset_id or None,
                                 active_only=request.active_only)
        return consent_pb2.ListConsentsResponse(consents=[consent_record(c) for c in found])
