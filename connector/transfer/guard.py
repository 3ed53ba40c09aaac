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

Every check reads the agreement's row as committed now, so a termination (by this process, the
CLI or the counter-party) or an edit of the stored document refuses the very next call. What is
remembered between calls is only what cannot change without the row or the trust bundle
changing: the signature checks and the parsed policy of a stored document (``VerifiedAgreements``),
valid for that exact text checked against that exact bundle, which is read again at every call.
Four ECDSA verifications and two certificate parses per call were most of a small transfer's
CPU time on the provider (issue 18).
"""

from __future__ import annotations

import collections
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from connector.contracts.participants import ParticipantTypes
from connector.contracts.store import AgreementRow, AgreementStore
from connector.datasets.store import PublishedDatasets, PublisherStore
from connector.federation import federated_roots_of
from mesh.agreements import Agreement, SignedAgreement, verify_signed
from mesh.certs import PeerIdentity, load_pem_bundle
from mesh.clock import from_iso, utcnow
from mesh.errors import FailedPrecondition, NotFound, PermissionDenied
from mesh.federation import claimed_mesh
from mesh.keystore import NodeKeyStore
from mesh.policy import Decision, Policy, PolicyContext, evaluate, parse_policy

log = logging.getLogger("areamesh.connector.transfer")
VERIFIED_KEEP = 4096        # agreements whose checked documents are remembered


class _Checked:
    __slots__ = ("bundle", "doc", "policy", "signed", "text")

    def __init__(self, text: str, bundle: bytes, signed: SignedAgreement, doc: dict) -> None:
        self.text, self.bundle, self.signed, self.doc = text, bundle, signed, doc
        self.policy: Policy | None = None


class VerifiedAgreements:
    """Stored agreements whose signatures passed ``verify_signed``, by agreement id, each with
    the exact stored text and the exact trust bundle it was checked against, and its policy once
    parsed. ``verify_signed`` depends on nothing else (a signer's certificate is judged at the
    time the agreement was made, not now), so the same text against the same bundle always
    passes again; any other text or bundle is checked afresh. Failures are not remembered."""

    def __init__(self, keep: int = VERIFIED_KEEP) -> None:
        self.keep = keep
        self._checked: collections.OrderedDict[str, _Checked] = collections.OrderedDict()
        self._roots: tuple[bytes, list] | None = None

    def check(self, agreement_id: str, text: str, bundle: bytes, federation: bytes = b""
              ) -> _Checked:
        """The stored document ``text`` (JSON) of the agreement, parsed and verified against
        ``bundle`` (PEM) and the federated meshes' roots (``federation``: the bytes of
        tls/federation.json, b"" without one); raises as ``verify_signed``. The text is parsed
        only when it is not the one already checked."""
        trust = bundle + b"\0" + federation
        hit = self._checked.get(agreement_id)
        if hit is not None and hit.text == text and hit.bundle == trust:
            self._checked.move_to_end(agreement_id)
            return hit
        doc = json.loads(text)
        signed = SignedAgreement.from_json(doc)
        verify_signed(signed, self._parsed(bundle),
                      federated=federated_roots_of(federation) if federation else None)
        checked = _Checked(text, trust, signed, doc)
        if text:
            self._checked[agreement_id] = checked
            self._checked.move_to_end(agreement_id)
            while len(self._checked) > self.keep:
                self._checked.popitem(last=False)
        return checked

    def _parsed(self, bundle: bytes) -> list:
        if self._roots is None or self._roots[0] != bundle:
            self._roots = (bundle, load_pem_bundle(bundle))
        return self._roots[1]


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


def _row_of(r, signed: dict[str, Any]) -> AgreementRow:
    """An agreement's row as ``AgreementStore.get`` makes it, with ``signed`` as parsed by
    ``VerifiedAgreements`` from the stored text (``signed_text``)."""
    return AgreementRow(r["id"], r["role"], r["state"], r["dataset_id"], r["offer_id"],
                        r["counterparty"], r["purpose"], signed,
                        json.loads(r["reason_json"]) if r["reason_json"] else None,
                        r["digest"], r["created_at"], r["updated_at"], r["notarised_at"],
                        r["signed_json"])


def federation_file(tls_dir: Path) -> bytes:
    """tls/federation.json as it is now (b"" without one): part of what an agreement's
    signatures are checked against."""
    try:
        return (tls_dir / "federation.json").read_bytes()
    except FileNotFoundError:
        return b""


class AgreementGuard:
    def __init__(self, data_dir: Path, keystore: NodeKeyStore, agreements: AgreementStore,
                 participants: ParticipantTypes) -> None:
        self.data_dir = data_dir
        self.keystore = keystore
        self.agreements = agreements
        self.participants = participants
        self.verified = VerifiedAgreements()
        self.datasets = PublishedDatasets(data_dir)   # descriptions, while their files are unchanged
        self._own_mesh: str | None = None

    async def check(self, peer: PeerIdentity, agreement_id: str) -> Authorised:
        """May ``peer`` use the agreement now, usage limits aside (a subscription never counts
        against them; a transfer then reserves itself under ``Authorised.limits``)."""
        raw = await self.agreements.db.read(lambda conn: conn.execute(
            "SELECT * FROM agreements WHERE id = ? AND role = 'provider'",
            (agreement_id,)).fetchone())
        if raw is None:
            raise NotFound(f"this provider has no agreement {agreement_id}",
                           message_ja=f"合意 {agreement_id} はこの提供者にありません",
                           code="unknown_agreement")
        state, text = raw["state"], raw["signed_json"]
        if raw["counterparty"] != peer.uri:
            log.warning("agreement %s asked for by %s, a non-party", agreement_id, peer.uri)
            raise PermissionDenied(f"agreement {agreement_id} is not {peer.uri}'s",
                                   message_ja="この合意の当事者ではありません", code="not_a_party")
        if state == "TERMINATED":
            reason = json.loads(raw["reason_json"]) if raw["reason_json"] else {}
            raise PermissionDenied(f"agreement {agreement_id} was terminated "
                                   f"({reason.get('code') or reason.get('reason') or 'no reason'})",
                                   message_ja=f"合意 {agreement_id} は終了しています",
                                   code="agreement_terminated", details={"reason": reason})
        if state != "FINALIZED" or not text:
            raise FailedPrecondition(f"agreement {agreement_id} is {state}, not FINALIZED",
                                     message_ja=f"合意 {agreement_id} は確定していません（{state}）",
                                     code="agreement_not_finalized")
        # the stored text is parsed and its signatures checked only when it is not the one
        # already checked (against the same trust): the row itself is read at every call
        checked = self.verified.check(agreement_id, text, self.keystore.trust_bundle_pem(),
                                      federation_file(self.keystore.tls_dir))
        agreement = checked.signed.agreement
        now = utcnow()
        if agreement.expires and from_iso(agreement.expires) <= now:
            raise PermissionDenied(f"agreement {agreement_id} expired at {agreement.expires}",
                                   message_ja=f"合意 {agreement_id} は有効期限"
                                              f"（{agreement.expires}）を過ぎています",
                                   code="agreement_expired")
        try:
            store, doc = self.datasets.find(agreement.dataset_id)
        except NotFound:
            raise FailedPrecondition(f"dataset {agreement.dataset_id} is no longer served here",
                                     message_ja=f"データセット {agreement.dataset_id} は提供されていません",
                                     code="dataset_withdrawn") from None
        if self._own_mesh is None:       # the node's certificate names its mesh; it never moves
            self._own_mesh = claimed_mesh(self.keystore.certificate()) or ""
        own_mesh = self._own_mesh
        ctx = PolicyContext(consumer_id=peer.participant_id,
                            consumer_type=await self.participants.type_of(peer.participant_id,
                                                                          peer.mesh_id),
                            purpose=agreement.purpose, provider_id=doc["publisher"], now=now,
                            consumer_mesh=peer.mesh_id or own_mesh, provider_mesh=own_mesh)
        if checked.policy is None:
            checked.policy = parse_policy(agreement.policy)
        policy = checked.policy
        decision = evaluate(policy, ctx)
        if not decision.allowed:
            log.info("transfer refused by policy", extra={"agreement": agreement_id, "peer": peer.uri})
            raise decision.denial()
        return Authorised(_row_of(raw, checked.doc), agreement, store, doc, decision, policy, ctx)
