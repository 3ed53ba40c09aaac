"""The consumer's side of a contract negotiation, over a channel the caller already has open.

``negotiate`` runs the steps of DESIGN §6 against one provider: ``Negotiate`` (REQUESTED), check
the provider-signed agreement (AGREED), countersign (VERIFIED), ``Countersign`` (the provider has
the registry notarise it, FINALIZED, with the digest and the registry's notarisation time).
Every state is saved in the consumer's ``AgreementStore`` before the next step, and a refusal is
stored as TERMINATED with its structured reason.
``request_contract`` (negotiation.py) finds the provider, opens the channel and calls this; a
long-lived caller (a service, a benchmark) can keep the channel and call it repeatedly.
"""

from __future__ import annotations

import json
from datetime import UTC

import grpc

from connector.contracts.store import AgreementRow, AgreementStore
from connector.discovery import DiscoveryCache
from connector.federation import federated_roots_map
from connector.peers import find_node
from connector.registry_client import RegistryClient
from mesh.agreements import SignedAgreement, verify_signed
from mesh.certs import load_pem_bundle
from mesh.clock import iso
from mesh.datasets import canonical_json
from mesh.errors import FailedPrecondition, InvalidRequest, PermissionDenied, from_grpc
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

__all__ = ["find_provider", "load_json_document", "negotiate"]


def load_json_document(raw: bytes, what: str) -> dict:
    """A JSON document received from the peer; ``malformed_agreement`` if it is not JSON."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidRequest(f"{what} is not JSON", code="malformed_agreement") from None
    return doc


async def find_provider(registry: RegistryClient, dataset_id: str, mesh_id: str = ""):
    """The registry's node record of the connector serving ``dataset_id`` (with its endpoint).

    Raises ``NotFound`` for an unknown dataset and ``FailedPrecondition`` when the serving
    connector has no reachable endpoint at the registry.
    """
    record = await registry.get_dataset(dataset_id, mesh_id=mesh_id)
    # remembered, so that the agreement's transfers reach the provider while the registry is down
    provider = await find_node(registry, record.served_by,
                               cache=DiscoveryCache(registry.keystore.tls_dir.parent))
    if provider is None or not provider.endpoint:
        raise FailedPrecondition(f"the connector serving {dataset_id} ({record.served_by}) "
                                 "is not reachable through the registry",
                                 message_ja="提供元コネクタが見つかりません")
    return provider


async def negotiate(stub: peer_pb2_grpc.PeerServiceStub, store: AgreementStore, keystore: NodeKeyStore,
                    *, own_identity: str, provider_identity: str, dataset_id: str, offer_id: str,
                    purpose: str, timeout: float = 15.0) -> AgreementRow:
    """Negotiate one agreement with the provider behind ``stub``; returns the stored row.

    ``own_identity`` is this node's identity URI and ``provider_identity`` the provider's; the
    provider's signed agreement must name both, the request's dataset, offer and purpose, and
    carry a valid provider signature chaining to ``keystore``'s trust bundle, or
    ``PermissionDenied`` is raised. gRPC failures are raised as the matching ``AreameshError``.
    The row is FINALIZED, or TERMINATED when the provider refused (its reason stored).
    """
    try:
        reply = await stub.Negotiate(peer_pb2.NegotiateRequest(
            dataset_id=dataset_id, offer_id=offer_id, purpose=purpose), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc, what=f"negotiation with {provider_identity}") from None
    common = {"id": reply.agreement_id, "role": "consumer", "dataset_id": dataset_id,
              "offer_id": offer_id, "counterparty": provider_identity, "purpose": purpose}
    await store.save(state="REQUESTED", **common)
    if reply.state != "AGREED":
        await store.save(state="TERMINATED", reason=load_json_document(reply.reason_json, "reason"), **common)
        return await store.get(reply.agreement_id, role="consumer")
    signed = SignedAgreement.from_json(load_json_document(reply.signed_agreement_json, "agreement"))
    a = signed.agreement
    if (a.id, a.dataset_id, a.offer_id, a.purpose, a.consumer, a.provider) != (
            reply.agreement_id, dataset_id, offer_id, purpose, own_identity, provider_identity):
        raise PermissionDenied("the provider's agreement does not match the request",
                               code="agreement_mismatch")
    verify_signed(signed, load_pem_bundle(keystore.trust_bundle_pem()), require=("provider",),
                  federated=federated_roots_map(keystore.tls_dir))
    await store.save(state="AGREED", signed=signed.to_json(), **common)
    both = signed.with_signature("consumer", keystore)
    await store.save(state="VERIFIED", signed=both.to_json(), **common)
    try:
        done = await stub.Countersign(peer_pb2.CountersignRequest(
            signed_agreement_json=canonical_json(both.to_json())), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        raise from_grpc(exc, what=f"countersign with {provider_identity}") from None
    at = iso(done.notarised_at.ToDatetime(tzinfo=UTC)) if done.HasField("notarised_at") else None
    await store.save(state="FINALIZED", digest=done.digest, notarised_at=at, **common)
    return await store.get(reply.agreement_id, role="consumer")
