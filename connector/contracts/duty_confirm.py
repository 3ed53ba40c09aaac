"""The consumer's side of a duty: ``areamesh connector contract duty confirm``.

The consumer tells the provider over mTLS (``PeerService.ConfirmDuty``) that it fulfilled a duty
of an agreement, e.g. deleted the data. Only once the provider has recorded it does the consumer
record it too, with the provider's time, so both sides show the same state. If the provider
cannot be reached nothing is recorded and the command fails: run it again.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import grpc

from connector.contracts.duties import MAX_NOTE, DutyBook, DutyState, resolve_duty
from connector.contracts.store import AgreementStore, open_contracts_db
from connector.metering.store import UsageStore, open_metering_db
from connector.node_state import NodeState
from connector.peers import dial_peer
from connector.registry_client import RegistryClient
from mesh.clock import iso
from mesh.errors import FailedPrecondition, InvalidRequest, from_grpc
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc


async def list_duties(data_dir: Path, *, agreement_id: str | None = None,
                      state: str | None = None) -> list[DutyState]:
    """This connector's duties (both roles) as of now, optionally of one agreement or state."""
    async with open_contracts_db(data_dir) as cdb, open_metering_db(data_dir) as mdb:
        book = DutyBook(cdb, AgreementStore(cdb), UsageStore(mdb))
        states = await book.refresh(agreement_id=agreement_id)
    return [s for s in states if state is None or s.state == state]


async def confirm_duty(data_dir: Path, agreement_id: str, duty: str, note: str = "", *,
                       timeout: float = 10.0) -> DutyState:
    """Confirm ``duty`` (index or action) of an agreement this node consumes; returns its state."""
    if len(note) > MAX_NOTE:
        raise InvalidRequest(f"--note is longer than {MAX_NOTE} characters", code="invalid_note")
    state = NodeState.load(data_dir)
    keystore = NodeKeyStore(data_dir / "tls")
    async with open_contracts_db(data_dir) as cdb, open_metering_db(data_dir) as mdb:
        agreements = AgreementStore(cdb)
        row = await agreements.get(agreement_id, role="consumer")
        if row.digest is None:
            raise FailedPrecondition(f"agreement {row.id} is {row.state} and was never finalized; "
                                     "it has no duties", code="agreement_not_finalized",
                                     message_ja="この合意は確定していないため義務はありません")
        book = DutyBook(cdb, agreements, UsageStore(mdb))
        target = resolve_duty(await book.refresh(agreement_id=row.id), duty)
        registry = RegistryClient(state, keystore, state.registry)
        try:
            async with await dial_peer(registry, keystore, row.counterparty) as channel:
                reply = await peer_pb2_grpc.PeerServiceStub(channel).ConfirmDuty(
                    peer_pb2.ConfirmDutyRequest(agreement_id=row.id, duty_index=target.duty_index,
                                                action=target.action, note=note), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_grpc(exc, what=f"duty confirmation to {row.counterparty}") from None
        finally:
            await registry.close()
        at = iso(reply.confirmed_at.ToDatetime(tzinfo=UTC))
        return await book.record_confirmation(row.id, target.duty_index, at, note)
