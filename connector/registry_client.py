"""The connector's mTLS client for the registry: heartbeat, renewal, discovery, revocation,
catalog, agreements, usage, flow-ledger checkpoints and, from the identity service on the same
port, residents' levels for personal-data transfers.

A registry that cannot be reached is one error, ``registry_unavailable`` (gRPC UNAVAILABLE,
HTTP 503), whose message names the registry's address and the call. After such a failure the
channel is dropped and the next call dials afresh: a gRPC channel left in TRANSIENT_FAILURE
waits out its exponential reconnect backoff (up to two minutes) and fails every call meanwhile,
which kept a node cut off long after a restarted registry was back. The channel's own backoff is
capped too (``MAX_RECONNECT_BACKOFF``) for the calls that keep it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import grpc

import mesh
from connector.node_state import NodeState
from mesh.errors import AreameshError, Unavailable, from_grpc
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import (
    common_pb2,
    identity_pb2,
    identity_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

log = logging.getLogger("areamesh.connector.registry")

MAX_RECONNECT_BACKOFF = timedelta(seconds=2)
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class RegistryClient:
    """One mTLS channel to the registry, rebuilt after the node's certificate is renewed."""

    def __init__(self, state: NodeState, keystore: NodeKeyStore, address: str,
                 *, timeout: timedelta = timedelta(seconds=10), wait: bool = False) -> None:
        """``timeout`` bounds every call. With ``wait``, a call to an unreachable registry waits
        for it to come back (within ``timeout``) before it fails with ``registry_unavailable``;
        without, it fails at once."""
        self.state = state
        self.keystore = keystore
        self.address = address
        self.timeout = timeout.total_seconds()
        self.wait = wait
        self._channel: grpc.aio.Channel | None = None
        self._stub: registry_pb2_grpc.RegistryServiceStub | None = None
        self._identity: identity_pb2_grpc.IdentityServiceStub | None = None
        self._retiring: set[asyncio.Task] = set()

    def _ensure(self) -> registry_pb2_grpc.RegistryServiceStub:
        if self._stub is None:
            self._channel = grpc.aio.secure_channel(
                self.address, self.keystore.channel_credentials(),
                options=[("grpc.ssl_target_name_override", self.state.registry_tls_name),
                         ("grpc.initial_reconnect_backoff_ms", 250),
                         ("grpc.min_reconnect_backoff_ms", 250),
                         ("grpc.max_reconnect_backoff_ms",
                          int(MAX_RECONNECT_BACKOFF.total_seconds() * 1000))])
            self._stub = registry_pb2_grpc.RegistryServiceStub(self._channel)
            self._identity = identity_pb2_grpc.IdentityServiceStub(self._channel)
        return self._stub

    async def reconnect(self) -> None:
        """Drop the channel so the next call uses the node's current certificate."""
        await self.close()

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = self._identity = None

    def _retire_channel(self) -> None:
        """Make the next call dial afresh; calls still running on the old channel get up to
        ``timeout`` to finish before it is closed."""
        old, self._channel, self._stub, self._identity = self._channel, None, None, None
        if old is None:
            return

        async def close_later() -> None:
            try:
                await old.close(grace=self.timeout)
            except asyncio.CancelledError:
                await old.close()
                raise

        task = asyncio.get_running_loop().create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _call(self, name: str, request):
        stub = self._ensure()
        try:
            return await getattr(stub, name)(request, timeout=self.timeout,
                                             wait_for_ready=self.wait or None)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc, name) from None

    def _failed(self, exc: grpc.aio.AioRpcError, name: str) -> AreameshError:
        """The error for a failed call; an unreachable registry also drops the channel."""
        if exc.code() not in UNREACHABLE:
            return from_grpc(exc, what=f"registry {name}")
        self._retire_channel()
        return Unavailable(
            f"the registry at {self.address} is unreachable or not answering ({name}: "
            f"{exc.code().name}: "
            f"{exc.details()}); agreements already FINALIZED keep working, new negotiations, "
            "renewals and revocation-list refreshes wait for it",
            message_ja=f"レジストリ（{self.address}）に接続できません。確定済みの合意による"
                       "データ取得は続けられますが、新しい合意・証明書更新・失効リスト更新は"
                       "レジストリの復旧を待ちます",
            code="registry_unavailable", details={"registry": self.address, "call": name})

    async def heartbeat(self, advertise: str) -> registry_pb2.HeartbeatResponse:
        return await self._call("Heartbeat", registry_pb2.HeartbeatRequest(
            advertise_endpoint=advertise, software_version=mesh.__version__))

    async def renew(self, csr_pem: bytes) -> registry_pb2.RenewResponse:
        return await self._call("Renew", registry_pb2.RenewRequest(csr_pem=csr_pem))

    async def list_nodes(self, participant_id: str = "", *, mesh_id: str = ""
                         ) -> list[common_pb2.NodeInfo]:
        """This mesh's nodes, or with ``mesh_id`` a federated mesh's (mesh-qualified URIs)."""
        reply = await self._call("ListNodes", registry_pb2.ListNodesRequest(
            participant_id=participant_id, mesh_id=mesh_id))
        return list(reply.nodes)

    async def get_dataset(self, dataset_id: str, *, mesh_id: str = ""
                          ) -> registry_pb2.DatasetRecord:
        """One dataset of this mesh's catalog, or with ``mesh_id`` of a federated mesh's."""
        return await self._call("GetDataset", registry_pb2.GetDatasetRequest(
            id=dataset_id, mesh_id=mesh_id))

    async def search_datasets(self, q: str = "", *, page: int = 1, per_page: int = 20,
                              **filters: str) -> registry_pb2.SearchDatasetsResponse:
        """The registry's catalog search (``filters``: theme, publisher, prefecture,
        standard_type, personal), as the catalog portal answers it."""
        return await self._call("SearchDatasets", registry_pb2.SearchDatasetsRequest(
            q=q, page=page, per_page=per_page, **filters))

    async def notarise(self, signed_json: bytes) -> registry_pb2.NotariseAgreementResponse:
        return await self._call("NotariseAgreement", registry_pb2.NotariseAgreementRequest(
            signed_agreement_json=signed_json))

    async def trust_bundle(self) -> registry_pb2.TrustBundle:
        """This mesh's roots and the federated meshes' roots and revocation lists."""
        return await self._call("GetTrustBundle", registry_pb2.GetTrustBundleRequest())

    async def revocation_list(self) -> registry_pb2.RevocationList:
        return await self._call("GetRevocationList", registry_pb2.GetRevocationListRequest())

    async def publish_dataset(self, dataset_json: bytes) -> registry_pb2.DatasetRecord:
        return await self._call("PublishDataset",
                                registry_pb2.PublishDatasetRequest(dataset_json=dataset_json))

    async def withdraw_dataset(self, dataset_id: str) -> registry_pb2.WithdrawDatasetResponse:
        return await self._call("WithdrawDataset",
                                registry_pb2.WithdrawDatasetRequest(id=dataset_id))

    async def report_usage_signed(self, signed_report_json: bytes
                                  ) -> registry_pb2.ReportUsageResponse:
        """Hand a signed usage report (mesh/usage_reports.py) to the registry's metering."""
        return await self._call("ReportUsage", registry_pb2.ReportUsageRequest(
            signed_report_json=signed_report_json))
    async def register_service(self, service_json: bytes) -> registry_pb2.ServiceRecord:
        """Register (or replace) a service of this participant or a tenant it hosts (data map)."""
        return await self._call("RegisterService",
                                registry_pb2.RegisterServiceRequest(service_json=service_json))

    async def list_services(self) -> list[registry_pb2.ServiceRecord]:
        reply = await self._call("ListServices", registry_pb2.ListServicesRequest())
        return list(reply.services)

    async def remove_service(self, service_id: str, operator_id: str = "") -> None:
        await self._call("RemoveService", registry_pb2.RemoveServiceRequest(
            operator_id=operator_id, id=service_id))

    async def report_usage(self, records: list[registry_pb2.UsageRecord]
                           ) -> registry_pb2.ReportUsageResponse:
        return await self._call("ReportUsage", registry_pb2.ReportUsageRequest(records=records))

    async def report_duties(self, duties: list[registry_pb2.DutyReport]
                            ) -> registry_pb2.ReportDutiesResponse:
        return await self._call("ReportDuties", registry_pb2.ReportDutiesRequest(duties=duties))

    async def submit_ledger_checkpoints(self, signed_json: list[bytes]
                                        ) -> registry_pb2.SubmitLedgerCheckpointsResponse:
        """Hand signed flow-ledger checkpoints (canonical JSON each, oldest first) to the registry."""
        return await self._call("SubmitLedgerCheckpoints", registry_pb2.SubmitLedgerCheckpointsRequest(
            signed_checkpoint_json=signed_json))

    async def ledger_checkpoint(self) -> registry_pb2.GetLedgerCheckpointResponse:
        """The newest flow-ledger checkpoint the registry holds for this node."""
        return await self._call("GetLedgerCheckpoint", registry_pb2.GetLedgerCheckpointRequest())

    async def _identity_call(self, name: str, request):
        self._ensure()
        assert self._identity is not None
        try:
            return await getattr(self._identity, name)(request, timeout=self.timeout,
                                                       wait_for_ready=self.wait or None)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc, name) from None

    async def identity_levels(self, local_id: str) -> identity_pb2.LinkedIdLevels:
        """The levels on record for this platform's ``local_id`` (NotFound when never linked)."""
        reply = await self._identity_call("GetLevels", identity_pb2.GetLevelsRequest(local_id=local_id))
        return reply.levels

    async def unlink_identity(self, local_id: str, assertion: bytes) -> identity_pb2.UnlinkResponse:
        """Remove this platform's ``local_id`` from its resident, proven by a fresh unlink
        assertion this node signed as the platform's identity provider."""
        return await self._identity_call("Unlink", identity_pb2.UnlinkRequest(
            platform=self.state.participant_id, local_id=local_id, assertion=assertion))

    async def transfer_levels(self, target_platform: str, local_ids: list[str]
                              ) -> list[identity_pb2.TransferLevels]:
        """Per id of this platform: its levels and those of the same person on ``target_platform``
        (parallel to ``local_ids``; the identity service takes up to 100,000 per call)."""
        self._ensure()
        assert self._identity is not None
        try:
            reply = await self._identity.CheckTransferLevels(identity_pb2.CheckTransferLevelsRequest(
                target_platform=target_platform, local_ids=local_ids), timeout=self.timeout,
                wait_for_ready=self.wait or None)
        except grpc.aio.AioRpcError as exc:
            raise self._failed(exc, "CheckTransferLevels") from None
        return list(reply.levels)
