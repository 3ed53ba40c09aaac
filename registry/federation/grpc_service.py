"""FederationService: what one registry answers another registry of a federated mesh.

Every method identifies the caller by its registry certificate (URI SAN
``urn:areamesh:mesh:<id>:registry``), which must have been issued by a CA in the federation
document of mesh ``<id>`` that this registry's operator added. ``Exchange`` answers any such
caller (that is how the caller learns the federation is mutual); search and node listing answer
only while the federation is active here too.
"""

from __future__ import annotations

import logging
import re

import grpc
from cryptography import x509

from mesh.certs import uri_sans
from mesh.clock import timestamp
from mesh.errors import NotFound, PermissionDenied, Unauthenticated
from mesh.proto.areamesh.v1 import federation_pb2, federation_pb2_grpc, registry_pb2
from mesh.signatures import issued_by
from mesh.tls import peer_certificate_pem
from registry.federation.store import Federation, FederationStore
from registry.grpc_service import dataset_record

log = logging.getLogger("areamesh.registry.federation")

SERVICE_NAME = federation_pb2.DESCRIPTOR.services_by_name["FederationService"].full_name
# "public" to the node interceptor (a registry certificate names no node); every method checks
# its caller itself (``FederationGrpcService.caller``)
PUBLIC_METHODS = frozenset(
    f"/{SERVICE_NAME}/{m.name}"
    for m in federation_pb2.DESCRIPTOR.services_by_name["FederationService"].methods)
_REGISTRY_URI = re.compile(r"^urn:areamesh:mesh:([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?):registry\Z")


def not_added(what: str) -> PermissionDenied:
    return PermissionDenied(f"{what}: this registry has not added the calling mesh's federation "
                            "document (or removed it)",
                            message_ja="このレジストリは呼び出し元メッシュとの連携を登録していません",
                            code="federation_not_added")


class FederationGrpcService(federation_pb2_grpc.FederationServiceServicer):
    def __init__(self, store: FederationStore, registry_service) -> None:
        """``registry_service``: this registry's ``RegistryGrpcService`` (search, nodes, CRL)."""
        self.store = store
        self.registry = registry_service

    async def caller(self, context: grpc.aio.ServicerContext, *, active: bool) -> Federation:
        pem = peer_certificate_pem(context)
        if pem is None:
            raise Unauthenticated("a federated registry's certificate is required",
                                  message_ja="連携先レジストリの証明書が必要です")
        cert = x509.load_pem_x509_certificate(pem)
        meshes = [m.group(1) for u in uri_sans(cert) if (m := _REGISTRY_URI.match(u))]
        if len(meshes) != 1:
            raise PermissionDenied("the client certificate names no mesh registry "
                                   "(URI SAN urn:areamesh:mesh:<id>:registry)",
                                   message_ja="クライアント証明書がレジストリを示していません",
                                   code="federation_not_a_registry")
        try:
            f = await self.store.get(meshes[0])
        except NotFound:
            raise not_added(f"mesh {meshes[0]}") from None
        if not any(issued_by(cert, ca) for ca in f.document.certificates):
            raise PermissionDenied(
                f"the caller claims to be the registry of mesh {f.mesh_id}, but that mesh's CA "
                "did not issue its certificate", message_ja="呼び出し元は、所属を名乗るメッシュの"
                "認証局が発行した証明書を持っていません", code="mesh_claim_mismatch")
        if active and not f.active:
            raise PermissionDenied(f"the federation with mesh {f.mesh_id} is not active yet "
                                   "(this registry has not reached the caller's)",
                                   message_ja=f"メッシュ {f.mesh_id} との連携はまだ有効ではありません",
                                   code="federation_pending")
        return f

    async def Exchange(self, request, context):
        f = await self.caller(context, active=False)
        crl = await self.registry.store.current_crl(self.registry.ca,
                                                    self.registry.config.crl_validity)
        log.info("federation exchange from mesh %s", f.mesh_id, extra={"mesh": f.mesh_id})
        return federation_pb2.FederationExchangeResponse(
            mesh_id=self.registry.ca.mesh_id, crl_der=crl.crl_der, crl_number=crl.number,
            next_update=timestamp(crl.next_update))

    async def SearchDatasets(self, request: registry_pb2.SearchDatasetsRequest, context):
        await self.caller(context, active=True)
        request.federated = False      # one hop: never passed on to our own federations
        return await self.registry.search(request)

    async def GetDataset(self, request: registry_pb2.GetDatasetRequest, context):
        await self.caller(context, active=True)
        return dataset_record(await self.registry.catalog.get(request.id))

    async def ListNodes(self, request: registry_pb2.ListNodesRequest, context):
        await self.caller(context, active=True)
        return await self.registry.list_nodes(registry_pb2.ListNodesRequest(
            participant_id=request.participant_id))
