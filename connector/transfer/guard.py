"""AgreementGuard: may this caller use this agreement now? Asked at every transfer and subscription.

The caller is the peer from the mTLS certificate; the agreement is this provider's own stored
copy (a consumer only names it, so a forged document never enters). Refused, each with a code:
unknown agreement (``not_found``), another consumer's agreement (``not_a_party``), not yet
FINALIZED (``agreement_not_finalized``), TERMINATED (``agreement_terminated``, with the stored
reason), past its ``expires`` (``agreement_expired``), a stored document whose signatures no
longer verify (``agreement_signature_invalid`` ...), a withdrawn dataset, and whatever the
offer's policy now refuses, such as its validity window.

Transfer and record limits are not decided here: the usage can change between this check and
the transfer's start. ``Authorised.limits`` decides them with the usage counted inside the
transaction that reserves the transfer (``UsageStore.reserve`` / ``resume``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from connector.contracts.participants import ParticipantTypes
from connector.contracts.store import AgreementRow, AgreementStore
from connector.datasets.store import PublisherStore, find_dataset
from connector.federation import federated_roots_map
from mesh.agreements import Agreement, SignedAgreement, verify_signed
from mesh.certs import PeerIdentity, load_pem_bundle
from mesh.clock import from_iso, utcnow
from mesh.errors import FailedPrecondition, NotFound, PermissionDenied
from mesh.federation import claimed_mesh
from mesh.keystore import NodeKeyStore
from mesh.policy import Decision, Policy, PolicyContext, evaluate, parse_policy

log = logging.getLogger("areamesh.connector.transfer")


@dataclass(frozen=True)
class Authorised:
    row: AgreementRow
    agreement: Agreement
    store: PublisherStore
    doc: dict[str, Any]
    decision: Decision          # without usage counts: limits are decided by ``limits``
    policy: Policy
    context: PolicyContext

    def limits(self, transfers: int, records: int) -> Decision:
        """The decision with the agreement's usage so far (transfers and records, this one
        excluded); raises ``policy_denied`` when a limit (or anything else) refuses it."""
        decision = evaluate(self.policy, replace(self.context, transfers_so_far=transfers,
                                                 records_so_far=records))
        if not decision.allowed:
            log.info("transfer refused by policy", extra={"agreement": self.agreement.id})
            raise decision.denial()
        return decision


class AgreementGuard:
    def __init__(self, data_dir: Path, keystore: NodeKeyStore, agreements: AgreementStore,
                 participants: ParticipantTypes) -> None:
        self.data_dir = data_dir
        self.keystore = keystore
        self.agreements = agreements
        self.participants = participants

    async def check(self, peer: PeerIdentity, agreement_id: str) -> Authorised:
        """May ``peer`` use the agreement now, usage limits aside (a subscription never counts
        against them; a transfer then reserves itself under ``Authorised.limits``)."""
        try:
            row = await self.agreements.get(agreement_id, role="provider")
        except NotFound:
            raise NotFound(f"this provider has no agreement {agreement_id}",
                           message_ja=f"合意 {agreement_id} はこの提供者にありません",
                           code="unknown_agreement") from None
        if row.counterparty != peer.uri:
            log.warning("agreement %s asked for by %s, a non-party", agreement_id, peer.uri)
            raise PermissionDenied(f"agreement {agreement_id} is not {peer.uri}'s",
                                   message_ja="この合意の当事者ではありません", code="not_a_party")
        if row.state == "TERMINATED":
            reason = row.reason or {}
            raise PermissionDenied(f"agreement {agreement_id} was terminated "
                                   f"({reason.get('code') or reason.get('reason') or 'no reason'})",
                                   message_ja=f"合意 {agreement_id} は終了しています",
                                   code="agreement_terminated", details={"reason": reason})
        if row.state != "FINALIZED" or row.signed is None:
            raise FailedPrecondition(f"agreement {agreement_id} is {row.state}, not FINALIZED",
                                     message_ja=f"合意 {agreement_id} は確定していません（{row.state}）",
                                     code="agreement_not_finalized")
        signed = SignedAgreement.from_json(row.signed)
        verify_signed(signed, load_pem_bundle(self.keystore.trust_bundle_pem()),
                      federated=federated_roots_map(self.keystore.tls_dir))
        agreement = signed.agreement
        now = utcnow()
        if agreement.expires and from_iso(agreement.expires) <= now:
            raise PermissionDenied(f"agreement {agreement_id} expired at {agreement.expires}",
                                   message_ja=f"合意 {agreement_id} は有効期限"
                                              f"（{agreement.expires}）を過ぎています",
                                   code="agreement_expired")
        try:
            store, doc = find_dataset(self.data_dir, agreement.dataset_id)
        except NotFound:
            raise FailedPrecondition(f"dataset {agreement.dataset_id} is no longer served here",
                                     message_ja=f"データセット {agreement.dataset_id} は提供されていません",
                                     code="dataset_withdrawn") from None
        own_mesh = claimed_mesh(self.keystore.certificate()) or ""
        ctx = PolicyContext(consumer_id=peer.participant_id,
                            consumer_type=await self.participants.type_of(peer.participant_id,
                                                                          peer.mesh_id),
                            purpose=agreement.purpose, provider_id=doc["publisher"], now=now,
                            consumer_mesh=peer.mesh_id or own_mesh, provider_mesh=own_mesh)
        policy = parse_policy(agreement.policy)
        decision = evaluate(policy, ctx)
        if not decision.allowed:
            log.info("transfer refused by policy", extra={"agreement": agreement_id, "peer": peer.uri})
            raise decision.denial()
        return Authorised(row, agreement, store, doc, decision, policy, ctx)
