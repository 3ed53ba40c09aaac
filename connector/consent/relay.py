"""The receiving side of ``ConsentService``: relay a resident's consent to their home connector.

A service (say 大阪府's 健康アプリ) asks a 姫路市 resident for consent on its own portal; the
resident signs in at 姫路市's identity provider, which issues an assertion with purpose
``consent``; the service hands it to :meth:`ConsentRelay.grant`, which calls 姫路市's connector
over mTLS as this node. ``areamesh connector consent relay …`` are the same calls for operators.
The home connector is named by a node URI or by its participant id (its first listed node).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from connector.node_state import NodeState
from connector.peers import dial_peer
from connector.registry_client import RegistryClient
from mesh.errors import InvalidRequest, Unavailable, from_grpc
from mesh.ids import parse_node_identity_uri
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import consent_pb2, consent_pb2_grpc


class ConsentRelay:
    """Calls to one provider's ``ConsentService`` from this node (``async with`` closes them)."""

    def __init__(self, data_dir: Path, provider: str) -> None:
        self.state = NodeState.load(data_dir)
        self.keystore = NodeKeyStore(data_dir / "tls")
        self.registry = RegistryClient(self.state, self.keystore, self.state.registry)
        self.provider = provider
        self._channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> ConsentRelay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._channel is not None:
            await self._channel.close()
        await self.registry.close()

    async def _stub(self) -> consent_pb2_grpc.ConsentServiceStub:
        if self._channel is None:
            uri = self.provider
            if parse_node_identity_uri(uri) is None:  # a participant id: its first reachable node
                nodes = [n for n in await self.registry.list_nodes(uri) if n.endpoint]
                if not nodes:
                    raise Unavailable(f"no connector of participant {uri} is reachable through "
                                      "the registry", message_ja=f"{uri} のコネクタが見つかりません",
                                      code="provider_unknown")
                uri = nodes[0].identity_uri
            self._channel = await dial_peer(self.registry, self.keystore, uri)
        return consent_pb2_grpc.ConsentServiceStub(self._channel)

    async def _call(self, name: str, request):
        stub = await self._stub()
        try:
            return await getattr(stub, name)(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, what=f"{self.provider} {name}") from None

    async def grant(self, assertion: bytes, *, purpose: str, dataset_id: str = "",
                    service_id: str = "", component_id: str = "", items: Sequence[str] = (),
                    expires_at: datetime | None = None) -> consent_pb2.ConsentRecord:
        if not assertion.strip():
            raise InvalidRequest("the resident's assertion is empty", code="assertion_required",
                                 message_ja="本人確認アサーションが空です")
        request = consent_pb2.GrantConsentRequest(
            resident_assertion=assertion, dataset_id=dataset_id, purpose=purpose,
            service_id=service_id, component_id=component_id, items=list(items))
        if expires_at is not None:
            stamp = Timestamp()
            stamp.FromDatetime(expires_at)
            request.expires_at.CopyFrom(stamp)
        return await self._call("GrantConsent", request)

    async def withdraw(self, *, consent_id: str = "", resident: str = "", purpose: str = "",
                       dataset_id: str = "", service_id: str = "", component_id: str = "",
                       reason: str = "") -> list[str]:
        reply = await self._call("WithdrawConsent", consent_pb2.WithdrawConsentRequest(
            consent_id=consent_id, resident=resident, purpose=purpose, dataset_id=dataset_id,
            service_id=service_id, component_id=component_id, reason=reason))
        return list(reply.withdrawn)

    async def list(self, *, resident: str = "", dataset_id: str = "", active_only: bool = False
                   ) -> list[consent_pb2.ConsentRecord]:
        reply = await self._call("ListConsents", consent_pb2.ListConsentsRequest(
            resident=resident, dataset_id=dataset_id, active_only=active_only))
        return list(reply.consents)
