"""RegistryService over gRPC: enrolment, renewal, heartbeats, discovery, trust and revocation,
catalog, agreements, metering and flow-ledger checkpoints.

Identity always comes from ``current_peer()`` (the verified client certificate); only
``Enrol`` is public, and it is authorised by the join token instead.
"""

from __future__ import annotations

import json
import logging

import grpc

from mesh.agreements import SignedAgreement, verify_signed
from mesh.certs import PeerIdentity, to_pem
from mesh.clock import timestamp, utcnow
from mesh.config import parse_hostport
from mesh.datasets import canonical_json
from mesh.errors import FailedPrecondition, InvalidRequest, PermissionDenied
from mesh.federation import qualified_uri
from mesh.grpc_auth import current_peer
from mesh.ids import node_dns_name, node_identity_uri, validate_node_name
from mesh.proto.areamesh.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from registry.audit.checkpoints import LedgerCheckpointStore
from registry.ca.authority import CertificateAuthority
from registry.catalog.datasets import CatalogService, DatasetRecord
from registry.catalog.query import search_query
from registry.config import RegistryConfig
from registry.datamap.services import Service, ServiceRegistry, record_agreement_purpose
from registry.duties import DutyRegister
from registry.federation.link import FederationLinks
from registry.federation.search import FederatedCatalog, MeshRecord
from registry.metering.reports import UsageReports
from registry.store import RegistryStore

log = logging.getLogger("areamesh.registry.grpc")

SERVICE_NAME = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
ENROL_METHOD = f"/{SERVICE_NAME}/Enrol"


class RegistryDbChecker:
    """Revocation for the registry itself: straight from its database, so a revocation made
    with the CLI applies to the very next call."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    async def check(self, identity: PeerIdentity) -> None:
        if identity.mesh_id:
            raise PermissionDenied(f"{identity.uri} belongs to mesh {identity.mesh_id}; only this "
                                   "mesh's nodes call its registry (federated meshes talk "
                                   "registry to registry)", message_ja="別のメッシュのノードは"
                                   "このレジストリを呼び出せません", code="foreign_mesh")
        state = await self.store.certificate_state(identity.serial_hex)
        if state is None:
            raise PermissionDenied(f"certificate {identity.serial_hex} was not issued by this "
                                   "registry", code="certificate_unknown")
        revoked_at, participant_status = state
        if revoked_at is not None:
            raise PermissionDenied(f"certificate {identity.serial_hex} of {identity.uri} is "
                                   f"revoked", message_ja="この証明書は失効しています",
                                   code="certificate_revoked")
        if participant_status == "suspended":
            raise PermissionDenied(f"participant {identity.participant_id} is "
                                   f"{participant_status}", message_ja="参加者が停止中です",
                                   code="participant_suspended")


def mesh_record(record: MeshRecord) -> registry_pb2.DatasetRecord:
    """A result of federated search or lookup: marked with its mesh; a federated one's
    ``served_by`` is mesh-qualified."""
    pb = dataset_record(record)
    pb.mesh_id = record.mesh_id
    if record.federated:
        pb.served_by = qualified_uri(record.mesh_id, record.node_participant_id, record.node_name)
    return pb


def dataset_record(record: DatasetRecord) -> registry_pb2.DatasetRecord:
    return registry_pb2.DatasetRecord(
        id=record.id, publisher_id=record.publisher_id, publisher_name=record.publisher_name,
        version=record.version, dataset_json=canonical_json(record.doc),
        served_by=node_identity_uri(record.node_participant_id, record.node_name),
        created=timestamp(record.created), modified=timestamp(record.modified))


class RegistryGrpcService(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, config: RegistryConfig, store: RegistryStore,
                 ca: CertificateAuthority, catalog: CatalogService,
                 links: FederationLinks | None = None) -> None:
        """``links``: the federations (trust bundle, federated nodes, datasets and search)."""
        self.links = links
        self.federated_catalog = FederatedCatalog(catalog, links) if links else None
        self.config = config
        self.store = store
        self.ca = ca
        self.catalog = catalog
        self.checkpoints = LedgerCheckpointStore(store.db, [ca.certificate])
        self.usage_reports = UsageReports(store.db, [ca.certificate])

    async def _bundle(self) -> registry_pb2.TrustBundle:
        return registry_pb2.TrustBundle(
            mesh_id=self.ca.mesh_id, ca_certificates_pem=[self.ca.ca_pem()],
            federated=await self.links.active_bundle() if self.links else [])

    async def Enrol(self, request: registry_pb2.EnrolRequest, context: grpc.aio.ServicerContext
                    ) -> registry_pb2.EnrolResponse:
        if request.ca_fingerprint != self.ca.fingerprint:
            raise PermissionDenied(
                f"the token pins CA {request.ca_fingerprint or '(none)'}, this registry's CA is "
                f"{self.ca.fingerprint}", message_ja="参加トークンの認証局指紋が一致しません",
                code="ca_fingerprint_mismatch")
        validate_node_name(request.node_name)
        participant = await self.store.check_token(request.token_id, request.token_secret)
        csr = self.ca.check_csr(request.csr_pem, participant_id=participant.id,
                                node_name=request.node_name)
        cert = self.ca.issue_node_certificate(csr, participant_id=participant.id,
                                              node_name=request.node_name,
                                              lifetime=self.config.cert_lifetime)
        await self.store.enrol(request.token_id, participant.id, request.node_name, cert)
        log.info("node enrolled", extra={"participant": participant.id,
                                         "node": request.node_name,
                                         "serial": format(cert.serial_number, "x")})
        return registry_pb2.EnrolResponse(
            certificate_pem=to_pem(cert), trust_bundle=await self._bundle(),
            participant_id=participant.id, participant_name=participant.name,
            not_after=timestamp(cert.not_valid_after_utc))

    async def Renew(self, request: registry_pb2.RenewRequest, context: grpc.aio.ServicerContext
                    ) -> registry_pb2.RenewResponse:
        peer = current_peer()
        if await self.store.node_status(peer.participant_id, peer.node_name) != "active":
            raise FailedPrecondition(f"node {peer.uri} is not active at this registry",
                                     code="node_inactive")
        csr = self.ca.check_csr(request.csr_pem, participant_id=peer.participant_id,
                                node_name=peer.node_name)
        cert = self.ca.issue_node_certificate(csr, participant_id=peer.participant_id,
                                              node_name=peer.node_name,
                                              lifetime=self.config.cert_lifetime)
        await self.store.record_renewal(peer.participant_id, peer.node_name, cert)
        log.info("certificate renewed", extra={"peer": peer.uri,
                                               "serial": format(cert.serial_number, "x")})
        return registry_pb2.RenewResponse(certificate_pem=to_pem(cert), trust_bundle=await self._bundle(),
                                          not_after=timestamp(cert.not_valid_after_utc))

    async def Heartbeat(self, request: registry_pb2.HeartbeatRequest,
                        context: grpc.aio.ServicerContext) -> registry_pb2.HeartbeatResponse:
        peer = current_peer()
        if len(request.advertise_endpoint) > 300:
            raise InvalidRequest("advertise_endpoint is too long")
        parse_hostport(request.advertise_endpoint, what="advertise_endpoint")
        await self.store.heartbeat(peer.participant_id, peer.node_name,
                                   request.advertise_endpoint, peer.serial_hex,
                                   request.software_version[:64])
        crl = await self.store.current_crl(self.ca, self.config.crl_validity)
        return registry_pb2.HeartbeatResponse(server_time=timestamp(utcnow()),
                                              revocation_list_number=crl.number)

    async def ListNodes(self, request: registry_pb2.ListNodesRequest,
                        context: grpc.aio.ServicerContext) -> registry_pb2.ListNodesResponse:
        current_peer()
        if request.mesh_id and request.mesh_id != self.ca.mesh_id and self.links:
            return await self.federated_nodes(request)
        return await self.list_nodes(request)

    async def federated_nodes(self, request: registry_pb2.ListNodesRequest
                              ) -> registry_pb2.ListNodesResponse:
        """A federated mesh's nodes, from its registry, named by mesh-qualified URIs."""
        assert self.links is not None
        reply = await self.links.call(request.mesh_id, "ListNodes", registry_pb2.ListNodesRequest(
            participant_id=request.participant_id))
        for n in reply.nodes:
            n.identity_uri = qualified_uri(request.mesh_id, n.participant_id, n.node_name)
        return reply

    async def list_nodes(self, request: registry_pb2.ListNodesRequest
                         ) -> registry_pb2.ListNodesResponse:
        """The nodes of this mesh (also what a federated registry is told)."""
        now = utcnow()
        nodes = []
        for n in await self.store.nodes(request.participant_id or None):
            info = common_pb2.NodeInfo(
                participant_id=n.participant_id, participant_name=n.participant_name,
                participant_type=n.participant_type, node_name=n.name,
                endpoint=n.endpoint or "",
                tls_server_name=node_dns_name(n.participant_id, n.name, self.ca.mesh_id),
                certificate_serial=n.cert_serial or "",
                online=n.online(self.config.heartbeat_interval, now),
                identity_uri=node_identity_uri(n.participant_id, n.name))
            if n.last_seen:
                info.last_seen.CopyFrom(timestamp(n.last_seen))
            nodes.append(info)
        return registry_pb2.ListNodesResponse(nodes=nodes)

    async def GetTrustBundle(self, request: registry_pb2.GetTrustBundleRequest,
                             context: grpc.aio.ServicerContext) -> registry_pb2.TrustBundle:
        return await self._bundle()

    async def GetRevocationList(self, request: registry_pb2.GetRevocationListRequest,
                                context: grpc.aio.ServicerContext) -> registry_pb2.RevocationList:
        crl = await self.store.current_crl(self.ca, self.config.crl_validity)
        return registry_pb2.RevocationList(crl_der=crl.crl_der, number=crl.number,
                                           this_update=timestamp(crl.this_update),
                                           next_update=timestamp(crl.next_update))

    # ---- catalog ---------------------------------------------------------------------------
    async def PublishDataset(self, request: registry_pb2.PublishDatasetRequest,
                             context: grpc.aio.ServicerContext) -> registry_pb2.DatasetRecord:
        return dataset_record(await self.catalog.publish(current_peer(), request.dataset_json))

    async def WithdrawDataset(self, request: registry_pb2.WithdrawDatasetRequest,
                              context: grpc.aio.ServicerContext
                              ) -> registry_pb2.WithdrawDatasetResponse:
        version = await self.catalog.withdraw(current_peer(), request.id)
        return registry_pb2.WithdrawDatasetResponse(id=request.id, version=version)

    async def GetDataset(self, request: registry_pb2.GetDatasetRequest,
                         context: grpc.aio.ServicerContext) -> registry_pb2.DatasetRecord:
        if request.mesh_id and request.mesh_id != self.ca.mesh_id and self.federated_catalog:
            return mesh_record(await self.federated_catalog.get(request.mesh_id, request.id))
        return dataset_record(await self.catalog.get(request.id))

    async def SearchDatasets(self, request: registry_pb2.SearchDatasetsRequest,
                             context: grpc.aio.ServicerContext
                             ) -> registry_pb2.SearchDatasetsResponse:
        return await self.search(request)

    async def search(self, request: registry_pb2.SearchDatasetsRequest
                     ) -> registry_pb2.SearchDatasetsResponse:
        """This mesh's catalog; with ``request.federated``, the federated meshes' too."""
        if request.federated and self.federated_catalog:
            return await self._federated_search(request)
        query = search_query({"q": request.q, "theme": request.theme,
                              "publisher": request.publisher, "prefecture": request.prefecture,
                              "standard_type": request.standard_type,
                              "personal": request.personal, "page": request.page,
                              "per_page": request.per_page})
        result, records = await self.catalog.search(query)
        return registry_pb2.SearchDatasetsResponse(
            total=result.total, results=[dataset_record(r) for r in records],
            facets=[registry_pb2.Facet(name=name, counts=[
                registry_pb2.FacetCount(value=str(v), count=n) for v, n in counts.items()])
                for name, counts in result.facets.items()])

    async def _federated_search(self, request: registry_pb2.SearchDatasetsRequest
                                ) -> registry_pb2.SearchDatasetsResponse:
        assert self.federated_catalog is not None
        query = search_query({"q": request.q, "theme": request.theme,
                              "publisher": request.publisher, "prefecture": request.prefecture,
                              "standard_type": request.standard_type,
                              "personal": request.personal, "page": request.page,
                              "per_page": request.per_page})
        answer = await self.federated_catalog.search(query)
        return registry_pb2.SearchDatasetsResponse(
            total=answer.result.total, results=[mesh_record(r) for r in answer.records],
            facets=[registry_pb2.Facet(name=name, counts=[
                registry_pb2.FacetCount(value=str(v), count=n) for v, n in counts.items()])
                for name, counts in answer.result.facets.items()])

    # ---- agreements ------------------------------------------------------------------------
    async def NotariseAgreement(self, request: registry_pb2.NotariseAgreementRequest,
                                context: grpc.aio.ServicerContext
                                ) -> registry_pb2.NotariseAgreementResponse:
        peer = current_peer()
        try:
            doc = json.loads(request.signed_agreement_json)
        except ValueError:
            raise InvalidRequest("signed_agreement_json is not JSON",
                                 code="malformed_agreement") from None
        signed = SignedAgreement.from_json(doc)
        verify_signed(signed, [self.ca.certificate], federated=self._federated_roots())
        agreement = signed.agreement
        # across meshes the parties are named mesh-qualified (mesh.federation)
        qualified = qualified_uri(self.ca.mesh_id, peer.participant_id, peer.node_name)
        if peer.uri not in (agreement.provider, agreement.consumer) and \
                qualified not in (agreement.provider, agreement.consumer):
            raise PermissionDenied(f"{peer.uri} is not a party to agreement {agreement.id}",
                                   message_ja="合意の当事者ではありません", code="not_a_party")
        at = await self.store.notarise(agreement.digest(), agreement.id, agreement.dataset_id,
                                       agreement.provider, agreement.consumer, peer.uri)
        await record_agreement_purpose(self.store.db, agreement.id, agreement.purpose)
        log.info("agreement notarised", extra={"agreement": agreement.id, "peer": peer.uri})
        return registry_pb2.NotariseAgreementResponse(digest=agreement.digest(),
                                                      notarised_at=timestamp(at))

    def _federated_roots(self) -> dict:
        """The active federations' roots, by mesh (for documents signed across meshes)."""
        if self.links is None:
            return {}
        return {f.mesh_id: list(f.document.certificates) for f in self.links.federations
                if f.active}

    # ---- metering ----------------------------------------------------------------------------
    async def ReportUsage(self, request: registry_pb2.ReportUsageRequest,
                          context: grpc.aio.ServicerContext) -> registry_pb2.ReportUsageResponse:
        peer = current_peer()
        reply = await self.usage_reports.submit(peer, request)
        for r in reply.rejected:
            log.warning("usage record refused: %s", r.message,
                        extra={"peer": peer.uri, "transfer": r.transfer_id, "code": r.code})
        return reply

    async def ReportDuties(self, request: registry_pb2.ReportDutiesRequest,
                           context: grpc.aio.ServicerContext) -> registry_pb2.ReportDutiesResponse:
        peer = current_peer()
        reply = await DutyRegister(self.store.db).record(peer, list(request.duties))
        for r in reply.rejected:
            log.warning("duty report refused: %s", r.message,
                        extra={"peer": peer.uri, "agreement": r.agreement_id, "code": r.code})
        return reply

    # ---- audit of personal-data flows (5-2) --------------------------------------------------
    async def SubmitLedgerCheckpoints(self, request: registry_pb2.SubmitLedgerCheckpointsRequest,
                                      context: grpc.aio.ServicerContext
                                      ) -> registry_pb2.SubmitLedgerCheckpointsResponse:
        return await self.checkpoints.submit(current_peer(), list(request.signed_checkpoint_json))

    async def GetLedgerCheckpoint(self, request: registry_pb2.GetLedgerCheckpointRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> registry_pb2.GetLedgerCheckpointResponse:
        """The newest checkpoint held for the caller's own node (its certificate says which)."""
        node = current_peer().uri
        held = await self.checkpoints.newest(node)
        forks = await self.checkpoints.forks(node)
        if held is None:
            return registry_pb2.GetLedgerCheckpointResponse(held=False, forks=forks)
        return registry_pb2.GetLedgerCheckpointResponse(
            held=True, signed_checkpoint_json=canonical_json(held.signed),
            received_at=held.received_at, forks=forks)

    # ---- data map: services (registry/datamap/services.py) ------------------------------------
    async def RegisterService(self, request: registry_pb2.RegisterServiceRequest,
                              context: grpc.aio.ServicerContext) -> registry_pb2.ServiceRecord:
        try:
            doc = json.loads(request.service_json)
        except ValueError:
            raise InvalidRequest("service_json is not JSON", code="invalid_service",
                                 message_ja="サービス定義がJSONではありません") from None
        return service_record(await ServiceRegistry(self.store).register(current_peer(), doc))

    async def ListServices(self, request: registry_pb2.ListServicesRequest,
                           context: grpc.aio.ServicerContext
                           ) -> registry_pb2.ListServicesResponse:
        peer = current_peer()
        mine = {peer.participant_id, *await self.store.tenants_of(peer.participant_id)}
        services = [s for s in await ServiceRegistry(self.store).list() if s.operator_id in mine]
        return registry_pb2.ListServicesResponse(services=[service_record(s) for s in services])

    async def RemoveService(self, request: registry_pb2.RemoveServiceRequest,
                            context: grpc.aio.ServicerContext
                            ) -> registry_pb2.RemoveServiceResponse:
        await ServiceRegistry(self.store).remove(current_peer(), request.operator_id, request.id)
        return registry_pb2.RemoveServiceResponse()


def service_record(s: Service) -> registry_pb2.ServiceRecord:
    return registry_pb2.ServiceRecord(operator_id=s.operator_id, id=s.id,
                                      service_json=canonical_json(s.doc()), updated_at=s.updated_at)
