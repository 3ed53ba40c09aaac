"""Contract negotiation over mTLS (DESIGN §6), both roles.

Consumer: ``request_contract`` finds the dataset's serving connector through the registry,
asks it to ``Negotiate`` (REQUESTED), checks the provider-signed agreement it gets back
(AGREED), countersigns it (VERIFIED) and hands it back with ``Countersign``; the provider has
the registry notarise the digest and answers FINALIZED with the digest and the registry's
notarisation time, which both sides keep in their row. Every step is persisted, so states
survive a restart; a refusal is stored as TERMINATED with its structured reason.

Provider: ``ProviderNegotiator`` judges the offer's policy against the caller's identity from
its certificate and its participant record at the registry, never against request fields.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta
from pathlib import Path

import grpc

from connector.contracts.client import find_provider, load_json_document, negotiate
from connector.contracts.participants import ParticipantTypes
from connector.contracts.store import AgreementRow, AgreementStore, open_contracts_db
from connector.datasets.store import find_dataset
from connector.federation import federated_roots, federated_roots_map
from connector.node_state import NodeState
from connector.registry_client import RegistryClient
from mesh.agreements import Agreement, SignedAgreement, verify_signed
from mesh.certs import PeerIdentity, identity_of, load_pem_bundle
from mesh.clock import from_iso, iso, timestamp, utcnow
from mesh.datasets import canonical_json
from mesh.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from mesh.federation import claimed_mesh, qualified_uri
from mesh.keystore import NodeKeyStore
from mesh.policy import PolicyContext, evaluate, parse_policy
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

log = logging.getLogger("areamesh.connector.contracts")
MAX_PURPOSE = 200



class ProviderNegotiator:
    def __init__(self, data_dir: Path, keystore: NodeKeyStore, registry: RegistryClient,
                 store: AgreementStore) -> None:
        self.data_dir = data_dir
        self.keystore = keystore
        self.registry = registry
        self.store = store
        self.participants = ParticipantTypes(registry, ttl=0, last_known=False)  # new: ask the registry

    def roots(self):
        return load_pem_bundle(self.keystore.trust_bundle_pem())

    async def negotiate(self, peer: PeerIdentity, req: peer_pb2.NegotiateRequest
                        ) -> peer_pb2.NegotiateResponse:
        if not req.purpose.strip() or len(req.purpose) > MAX_PURPOSE:
            raise InvalidRequest(f"purpose must be 1-{MAX_PURPOSE} characters",
                                 message_ja="利用目的を指定してください")
        _, doc = find_dataset(self.data_dir, req.dataset_id)
        offer = next((o for o in doc.get("offers", []) if o.get("id") == req.offer_id), None)
        if offer is None:
            known = ", ".join(o.get("id", "?") for o in doc.get("offers", [])) or "none"
            raise NotFound(f"dataset {req.dataset_id} has no offer {req.offer_id!r} (offers: {known})",
                           message_ja=f"オファー {req.offer_id} はありません")
        policy = parse_policy(offer["policy"])
        own_mesh = claimed_mesh(self.keystore.certificate()) or ""
        ctx = PolicyContext(consumer_id=peer.participant_id,
                            consumer_type=await self.participants.type_of(peer.participant_id,
                                                                          peer.mesh_id),
                            purpose=req.purpose, provider_id=doc["publisher"], now=utcnow(),
                            records_requested=req.records_requested or None,
                            consumer_mesh=peer.mesh_id or own_mesh, provider_mesh=own_mesh)
        decision = evaluate(policy, ctx)
        # across meshes both parties are named mesh-qualified (mesh.federation), so the document
        # both sign means the same to each side and to both registries
        provider = self.keystore_uri()
        if peer.mesh_id:
            own = identity_of(self.keystore.certificate())
            provider = qualified_uri(own_mesh, own.participant_id, own.node_name)
        agreement = Agreement.new(dataset_id=req.dataset_id, offer_id=req.offer_id,
                                  policy=offer["policy"], provider=provider,
                                  consumer=peer.uri, purpose=req.purpose)
        common = {"id": agreement.id, "role": "provider", "dataset_id": req.dataset_id,
                  "offer_id": req.offer_id, "counterparty": peer.uri, "purpose": req.purpose}
        if not decision.allowed:
            reason = {"reason": "policy", "decision": decision.to_json(),
                      "counterparty": peer.uri, "transport": "grpc-mtls"}
            await self.store.save(state="TERMINATED", reason=reason, **common)
            log.info("negotiation refused", extra={"agreement": agreement.id, "peer": peer.uri})
            return peer_pb2.NegotiateResponse(
                state="TERMINATED", agreement_id=agreement.id,
                reason_json=canonical_json(reason))
        signed = SignedAgreement(agreement, {}).with_signature("provider", self.keystore)
        await self.store.save(state="AGREED", signed=signed.to_json(), **common)
        return peer_pb2.NegotiateResponse(state="AGREED", agreement_id=agreement.id,
                                          signed_agreement_json=canonical_json(signed.to_json()))

    def keystore_uri(self) -> str:
        ident = identity_of(self.keystore.certificate())
        if ident is None:
            raise FailedPrecondition("this node's certificate names no node identity")
        return ident.uri

    async def countersign(self, peer: PeerIdentity, req: peer_pb2.CountersignRequest
                          ) -> peer_pb2.CountersignResponse:
        signed = SignedAgreement.from_json(load_json_document(req.signed_agreement_json, "agreement"))
        row = await self.store.get(signed.agreement.id, role="provider")
        if row.counterparty != peer.uri:
            raise PermissionDenied(f"agreement {row.id} was negotiated with {row.counterparty}, "
                                   f"not {peer.uri}", code="not_a_party")
        if row.state == "FINALIZED":
            return _finalized(row.digest or "", row.notarised_at)
        if row.state != "AGREED" or row.signed is None:
            raise FailedPrecondition(f"agreement {row.id} is {row.state}, not AGREED")
        ours = SignedAgreement.from_json(row.signed)
        if signed.agreement != ours.agreement:
            raise PermissionDenied("the countersigned agreement differs from the one this "
                                   "provider signed", message_ja="合意文書が改ざんされています",
                                   code="agreement_tampered")
        verify_signed(signed, self.roots(),
                      federated=federated_roots_map(self.keystore.tls_dir))
        await self.store.save(state="VERIFIED", signed=signed.to_json(), **row.key_fields())
        reply = await self.registry.notarise(canonical_json(signed.to_json()))
        at = iso(reply.notarised_at.ToDatetime(tzinfo=UTC)) if reply.HasField("notarised_at") else None
        await self.store.save(state="FINALIZED", digest=reply.digest, notarised_at=at,
                              **row.key_fields())
        log.info("agreement finalized", extra={"agreement": row.id, "peer": peer.uri})
        return _finalized(reply.digest, at)


def _finalized(digest: str, notarised_at: str | None) -> peer_pb2.CountersignResponse:
    """The FINALIZED answer, with the registry's notarisation time when it is known."""
    reply = peer_pb2.CountersignResponse(state="FINALIZED", digest=digest)
    if notarised_at:
        reply.notarised_at.CopyFrom(timestamp(from_iso(notarised_at)))
    return reply



async def request_contract(data_dir: Path, dataset_id: str, offer_id: str, purpose: str,
                           *, timeout: float = 15.0,
                           registry_wait: timedelta = timedelta(seconds=10),
                           mesh_id: str = "") -> AgreementRow:
    """The consumer's side of a negotiation; returns the stored row (FINALIZED or TERMINATED).

    Finds the serving connector through the registry, opens an mTLS channel to it and runs
    :func:`connector.contracts.client.negotiate` over it. An unreachable registry is waited for
    up to ``registry_wait``, then ``registry_unavailable`` (naming it) is raised: a new agreement
    needs the registry, to find the provider and to notarise the agreement.

    ``mesh_id`` names a federated mesh whose catalog holds the dataset: the provider is found
    through our registry (which asks that mesh's), dialled trusting that mesh's roots only, both
    parties are named mesh-qualified, and once FINALIZED (notarised by the provider at its
    registry) the agreement is notarised at ours too.
    """
    state = NodeState.load(data_dir)
    keystore = NodeKeyStore(data_dir / "tls")
    registry = RegistryClient(state, keystore, state.registry, timeout=registry_wait, wait=True)
    db = await open_contracts_db(data_dir).open()
    store = AgreementStore(db)
    try:
        federated = bool(mesh_id) and mesh_id != state.mesh_id
        provider = await find_provider(registry, dataset_id, mesh_id if federated else "")
        roots = federated_roots(keystore.tls_dir, mesh_id) if federated else None
        if federated and roots is None:
            raise FailedPrecondition(f"this connector has not received mesh {mesh_id}'s roots "
                                     "(is the federation active?)",
                                     message_ja=f"メッシュ {mesh_id} との連携情報がありません",
                                     code="mesh_not_trusted")
        own = qualified_uri(state.mesh_id, state.participant_id, state.node_name) \
            if federated else state.identity_uri
        options = [("grpc.ssl_target_name_override", provider.tls_server_name)]
        async with grpc.aio.secure_channel(provider.endpoint, keystore.channel_credentials(roots),
                                           options=options) as channel:
            row = await negotiate(peer_pb2_grpc.PeerServiceStub(channel), store, keystore,
                                  own_identity=own,
                                  provider_identity=provider.identity_uri, dataset_id=dataset_id,
                                  offer_id=offer_id, purpose=purpose, timeout=timeout)
        if federated and row.state == "FINALIZED" and row.signed:
            await registry.notarise(canonical_json(row.signed))   # at both registries
        return row
    finally:
        await registry.close()
        await db.close()
