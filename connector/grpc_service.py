"""PeerService: what a connector serves to other connectors over mTLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc

from connector.contracts.duties import DutyBook, accept_confirmation
from connector.contracts.negotiation import ProviderNegotiator
from connector.contracts.store import AgreementStore
from connector.contracts.termination import accept_termination
from connector.data_plane import DataPlane
from connector.subscriptions.watcher import DatasetWatcher
from connector.transfer.guard import AgreementGuard
from connector.transfer.wire import serialize_chunk
from mesh.clock import timestamp
from mesh.grpc_auth import current_peer
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

SERVICE_NAME = peer_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name


class PeerGrpcService(peer_pb2_grpc.PeerServiceServicer):
    def __init__(self, own_uri: str, negotiator: ProviderNegotiator, data_plane: DataPlane,
                 agreements: AgreementStore, guard: AgreementGuard, watcher: DatasetWatcher,
                 duties: DutyBook, on_duty_change: Callable[[], None] = lambda: None) -> None:
        self.own_uri = own_uri
        self.duties = duties
        self.on_duty_change = on_duty_change
        self.negotiator = negotiator
        self.data_plane = data_plane
        self.agreements = agreements
        self.guard = guard
        self.watcher = watcher
        self.transfer_bytes = False  # add_peer_service: Transfer's serializer passes bytes through

    async def Ping(self, request: peer_pb2.PingRequest, context: grpc.aio.ServicerContext
                   ) -> peer_pb2.PingResponse:
        return peer_pb2.PingResponse(server_identity=self.own_uri,
                                     caller_identity=current_peer().uri, server_time=timestamp(),
                                     payload=request.payload)

    async def Negotiate(self, request: peer_pb2.NegotiateRequest,
                        context: grpc.aio.ServicerContext) -> peer_pb2.NegotiateResponse:
        return await self.negotiator.negotiate(current_peer(), request)

    async def Countersign(self, request: peer_pb2.CountersignRequest,
                          context: grpc.aio.ServicerContext) -> peer_pb2.CountersignResponse:
        return await self.negotiator.countersign(current_peer(), request)

    async def Transfer(self, request: peer_pb2.TransferRequest, context: grpc.aio.ServicerContext
                       ) -> AsyncIterator[peer_pb2.TransferChunk | bytes]:
        """Chunks as the provider makes them: messages, or batches already serialized
        (``connector/transfer/wire.py``), which the generated serializer would not take."""
        transfers = await self.data_plane.transfers()
        async for chunk in transfers.stream(current_peer(), request):
            if isinstance(chunk, bytes) and not self.transfer_bytes:
                chunk = peer_pb2.TransferChunk.FromString(chunk)
            yield chunk

    async def TransferWithAcks(self, request_iterator: AsyncIterator[peer_pb2.TransferUp],
                               context: grpc.aio.ServicerContext
                               ) -> AsyncIterator[peer_pb2.TransferChunk | bytes]:
        """Transfer and its acknowledgements on one call (``TransferProvider.stream_with_acks``)."""
        transfers = await self.data_plane.transfers()
        async for chunk in transfers.stream_with_acks(current_peer(), request_iterator):
            if isinstance(chunk, bytes) and not self.transfer_bytes:
                chunk = peer_pb2.TransferChunk.FromString(chunk)
            yield chunk

    async def AcknowledgeTransfer(self, request: peer_pb2.AcknowledgeTransferRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> peer_pb2.AcknowledgeTransferResponse:
        transfers = await self.data_plane.transfers()
        return await transfers.acknowledge(current_peer(), request)

    async def Terminate(self, request: peer_pb2.TerminateRequest,
                        context: grpc.aio.ServicerContext) -> peer_pb2.TerminateResponse:
        return await accept_termination(self.agreements, current_peer(), request)

    async def ConfirmDuty(self, request: peer_pb2.ConfirmDutyRequest,
                          context: grpc.aio.ServicerContext) -> peer_pb2.DutyState:
        return await accept_confirmation(self.duties, current_peer(), request, self.on_duty_change)

    async def Subscribe(self, request: peer_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
                        ) -> AsyncIterator[peer_pb2.ChangeNotice]:
        """Notices until the caller hangs up; the agreement is checked again with each one and
        at least every few watch intervals, so a termination ends the stream."""
        peer = current_peer()
        auth = await self.guard.check(peer, request.agreement_id)
        dataset_id = auth.agreement.dataset_id
        queue, version = await self.watcher.subscribe(dataset_id)
        try:
            if request.since_version != version:
                yield _notice(dataset_id, version, request.since_version, None, "subscribed")
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), timeout=self.watcher.interval * 5)
                except TimeoutError:
                    await self.guard.check(peer, request.agreement_id)
                    continue
                await self.guard.check(peer, request.agreement_id)
                yield _notice(dataset_id, change.version, change.previous, change.at, change.cause)
        finally:
            self.watcher.unsubscribe(dataset_id, queue)


def add_peer_service(servicer: PeerGrpcService, server: grpc.aio.Server) -> None:
    """Register ``servicer`` as the generated code does, but with Transfer serializers that
    send pre-encoded batches as they are (saves two copies of every batch)."""
    peer_pb2_grpc.add_PeerServiceServicer_to_server(servicer, server)
    server.add_registered_method_handlers(SERVICE_NAME, {
        "Transfer": grpc.unary_stream_rpc_method_handler(
            servicer.Transfer, request_deserializer=peer_pb2.TransferRequest.FromString,
            response_serializer=serialize_chunk),
        "TransferWithAcks": grpc.stream_stream_rpc_method_handler(
            servicer.TransferWithAcks, request_deserializer=peer_pb2.TransferUp.FromString,
            response_serializer=serialize_chunk)})
    servicer.transfer_bytes = True


def _notice(dataset_id: str, version: str, previous: str, at, cause: str) -> peer_pb2.ChangeNotice:
    return peer_pb2.ChangeNotice(dataset_id=dataset_id, version=version, previous_version=previous,
                                 changed_at=timestamp(at), cause=cause)
