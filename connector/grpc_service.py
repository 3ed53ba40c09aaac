"""PeerService: what a connector serves to other connectors over mTLS."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from connector.contracts.negotiation import ProviderNegotiator
from mesh.grpc_auth import current_peer
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

SERVICE_NAME = peer_pb2.DESCRIPTOR.services_by_name["PeerService"].full_name


class PeerGrpcService(peer_pb2_grpc.PeerServiceServicer):
    def __init__(self, own_uri: str, negotiator: ProviderNegotiator) -> None:
        self.own_uri = own_uri
        self.negotiator = negotiator

    async def Ping(self, request: peer_pb2.PingRequest, context: grpc.aio.ServicerContext
                   ) -> peer_pb2.PingResponse:
        now = Timestamp()
        now.GetCurrentTime()
        return peer_pb2.PingResponse(server_identity=self.own_uri,
                                     caller_identity=current_peer().uri, server_time=now,
                                     payload=request.payload)

    async def Negotiate(self, request: peer_pb2.NegotiateRequest,
                        context: grpc.aio.ServicerContext) -> peer_pb2.NegotiateResponse:
        return await self.negotiator.negotiate(current_peer(), request)

    async def Countersign(self, request: peer_pb2.CountersignRequest,
                          context: grpc.aio.ServicerContext) -> peer_pb2.CountersignResponse:
        return await self.negotiator.countersign(current_peer(), request)
