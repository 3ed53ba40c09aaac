"""IdentityService over gRPC (``protos/areamesh/v1/identity.proto``) on the registry's mTLS port.

Authorisation uses only the verified caller (``current_peer()``), never a request field:

- every method: the caller's participant is certified at this registry (the interceptor has
  already refused revoked certificates and suspended participants);
- ``Link``/``Unlink``: the assertions are the proof (signed by the platforms' identity
  providers, fresh, single-use), so any certified participant may submit them. The reply carries
  no internal person id and no id other than the asserted ones: the caller gets its own pairwise
  pseudonym of the resident, the two asserted ids' levels and the elevations of this link;
- ``GetPseudonym``/``GetLevels``: only about ids of the caller's own platform (a ``platform``
  field, when set, must be the caller's participant); a pseudonym may be asked for any
  registered participant as receiver;
- ``ResolvePseudonym``: maps a pseudonym handed to the caller to the caller's own local id only.

Errors are ``mesh.errors`` exceptions; ``PeerAuthInterceptor`` turns them into gRPC statuses.
"""

from __future__ import annotations

import logging
from typing import Protocol

import grpc

from mesh.certs import PeerIdentity
from mesh.errors import InvalidRequest, NotFound, PermissionDenied
from mesh.grpc_auth import current_peer
from mesh.identity_assertions import SignedAssertion
from mesh.proto.areamesh.v1 import identity_pb2, identity_pb2_grpc
from registry.identity.service import Elevation, IdentityService
from registry.identity.store import LinkedId
from registry.store import Participant

log = logging.getLogger("areamesh.registry.identity.grpc")

SERVICE_NAME = identity_pb2.DESCRIPTOR.services_by_name["IdentityService"].full_name


class ParticipantLookup(Protocol):
    async def participant(self, pid: str) -> Participant:
        """The registered participant ``pid``; raises ``NotFound`` when there is none."""


def _levels(record: LinkedId) -> identity_pb2.LinkedIdLevels:
    return identity_pb2.LinkedIdLevels(
        platform=record.platform, local_id=record.local_id, ial=record.ial, aal=record.aal,
        asserted_ial=record.asserted_ial, asserted_aal=record.asserted_aal,
        elevated_from=record.elevated_from or "", linked_at=record.linked_at)


def _elevation(e: Elevation) -> identity_pb2.Elevation:
    return identity_pb2.Elevation(platform=e.platform, local_id=e.local_id, level=e.level,
                                  before=e.before, after=e.after, vouched_by=e.vouched_by)


def _required(value: str, name: str) -> str:
    if not value:
        raise InvalidRequest(f"{name} is required", message_ja=f"{name} を指定してください",
                             code="missing_field", details={"field": name})
    return value


class IdentityGrpcService(identity_pb2_grpc.IdentityServiceServicer):
    def __init__(self, service: IdentityService, participants: ParticipantLookup) -> None:
        self.service = service
        self.participants = participants

    async def _caller(self) -> PeerIdentity:
        """The verified caller, refused unless its participant is certified."""
        peer = current_peer()
        try:
            participant = await self.participants.participant(peer.participant_id)
        except NotFound:
            participant = None
        if participant is None or participant.status != "certified":
            raise PermissionDenied(
                f"participant {peer.participant_id} is not certified; only certified participants "
                "may use the identity service",
                message_ja="認定された参加者のみ本人確認・名寄せサービスを利用できます",
                code="participant_not_certified", details={"participant": peer.participant_id})
        return peer

    @staticmethod
    def _own_platform(peer: PeerIdentity, requested: str) -> str:
        if requested and requested != peer.participant_id:
            raise PermissionDenied(
                f"participant {peer.participant_id} may only ask about ids of its own platform, "
                f"not of {requested}",
                message_ja="自らの基盤のIDについてのみ問い合わせできます",
                code="not_own_platform", details={"platform": requested})
        return peer.participant_id

    async def Link(self, request: identity_pb2.LinkRequest, context: grpc.aio.ServicerContext
                   ) -> identity_pb2.LinkResponse:
        peer = await self._caller()
        result = await self.service.link(request.assertion_a, request.assertion_b)
        # Both assertions verified inside link(); re-parse them only to know which ids they named.
        asserted = [SignedAssertion.parse(raw).assertion
                    for raw in (request.assertion_a, request.assertion_b)]
        named = {(a.platform, a.local_id) for a in asserted}
        pseudonym = await self.service.pseudonym(asserted[0].platform, asserted[0].local_id,
                                                 peer.participant_id)
        log.info("link submitted", extra={"peer": peer.uri, "new_person": result.created,
                                          "merged": result.merged_from is not None,
                                          "elevations": len(result.elevations)})
        return identity_pb2.LinkResponse(
            pseudonym=pseudonym, created=result.created, merged=result.merged_from is not None,
            linked=[_levels(i) for i in result.ids if (i.platform, i.local_id) in named],
            elevations=[_elevation(e) for e in result.elevations
                        if (e.platform, e.local_id) in named])

    async def Unlink(self, request: identity_pb2.UnlinkRequest,
                     context: grpc.aio.ServicerContext) -> identity_pb2.UnlinkResponse:
        peer = await self._caller()
        platform = _required(request.platform, "platform")
        local_id = _required(request.local_id, "local_id")
        result = await self.service.unlink(platform, local_id, request.assertion)
        log.info("unlink submitted", extra={"peer": peer.uri, "platform": platform,
                                            "reverted": len(result.reverted)})
        return identity_pb2.UnlinkResponse(platform=platform, local_id=local_id,
                                           remaining=len(result.remaining),
                                           reverted=len(result.reverted))

    async def GetPseudonym(self, request: identity_pb2.GetPseudonymRequest,
                           context: grpc.aio.ServicerContext) -> identity_pb2.GetPseudonymResponse:
        peer = await self._caller()
        platform = self._own_platform(peer, request.platform)
        local_id = _required(request.local_id, "local_id")
        receiver = request.for_participant or peer.participant_id
        if receiver != peer.participant_id:
            await self.participants.participant(receiver)  # NotFound for an unknown receiver
        pseudonym = await self.service.pseudonym(platform, local_id, receiver)
        return identity_pb2.GetPseudonymResponse(pseudonym=pseudonym, for_participant=receiver)

    async def ResolvePseudonym(self, request: identity_pb2.ResolvePseudonymRequest,
                               context: grpc.aio.ServicerContext
                               ) -> identity_pb2.ResolvePseudonymResponse:
        peer = await self._caller()
        local_id = await self.service.resolve(_required(request.pseudonym, "pseudonym"),
                                              peer.participant_id)
        return identity_pb2.ResolvePseudonymResponse(platform=peer.participant_id,
                                                     local_id=local_id)

    async def GetLevels(self, request: identity_pb2.GetLevelsRequest,
                        context: grpc.aio.ServicerContext) -> identity_pb2.GetLevelsResponse:
        peer = await self._caller()
        platform = self._own_platform(peer, request.platform)
        local_id = _required(request.local_id, "local_id")
        record = await self.service.levels(platform, local_id)
        reply = identity_pb2.GetLevelsResponse(levels=_levels(record))
        if request.min_ial or request.min_aal:
            d = await self.service.meets_minimum(platform, local_id, request.min_ial or 1,
                                                 request.min_aal or 1)
            reply.decision.CopyFrom(identity_pb2.LevelDecision(
                allowed=d.allowed, code=d.code, message=d.message, message_ja=d.message_ja))
        return reply

    async def CheckTransferLevels(self, request: identity_pb2.CheckTransferLevelsRequest,
                                  context: grpc.aio.ServicerContext
                                  ) -> identity_pb2.CheckTransferLevelsResponse:
        peer = await self._caller()
        target = _required(request.target_platform, "target_platform")
        found = await self.service.transfer_levels(peer.participant_id, target,
                                                   list(request.local_ids))
        return identity_pb2.CheckTransferLevelsResponse(levels=[
            identity_pb2.TransferLevels() if t is None else identity_pb2.TransferLevels(
                source_known=True, source_ial=t.source_ial, source_aal=t.source_aal,
                linked=t.target_ial is not None, target_ial=t.target_ial or 0,
                target_aal=t.target_aal or 0) for t in found])
