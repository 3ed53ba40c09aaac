"""Ending an agreement (DESIGN §6): either party, always with a structured reason.

The side that terminates stores TERMINATED first — from then on its connector refuses
transfers under the agreement — and then tells the counterparty over mTLS, which stores the same
reason. If the counterparty cannot be reached, the local termination stands and the reason
records that it was not notified.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import grpc

from connector.contracts.store import AgreementRow, AgreementStore, open_contracts_db
from connector.node_state import NodeState
from connector.peers import dial_peer
from connector.registry_client import RegistryClient
from mesh.certs import PeerIdentity
from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.errors import AreameshError, InvalidRequest, PermissionDenied, from_grpc
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import peer_pb2, peer_pb2_grpc

log = logging.getLogger("areamesh.connector.contracts")
REASON_CODES = {
    "no_longer_needed": "利用終了",
    "purpose_fulfilled": "目的達成",
    "policy_violation": "利用条件違反",
    "duty_not_fulfilled": "義務不履行",
    "dataset_withdrawn": "データ提供終了",
    "security_incident": "セキュリティ事故",
    "consent_withdrawn": "本人同意の撤回",
    "other": "その他",
}
MAX_MESSAGE = 500


def termination_reason(code: str, message: str, *, by: str) -> dict[str, Any]:
    if code not in REASON_CODES:
        raise InvalidRequest(f"unknown termination reason {code!r}; use one of {', '.join(REASON_CODES)}",
                             message_ja=f"終了理由コード {code!r} は使えません（{'、'.join(REASON_CODES)}）",
                             code="invalid_reason", details={"known": list(REASON_CODES)})
    if len(message) > MAX_MESSAGE:
        raise InvalidRequest(f"the reason's message is longer than {MAX_MESSAGE} characters",
                             code="invalid_reason")
    return {"reason": "terminated", "code": code, "label_ja": REASON_CODES[code], "message": message,
            "by": by, "at": iso(utcnow()), "transport": "grpc-mtls"}



async def accept_termination(store: AgreementStore, peer: PeerIdentity,
                             req: peer_pb2.TerminateRequest) -> peer_pb2.TerminateResponse:
    """The counterparty ends the agreement: served by ``PeerService.Terminate``."""
    row = await store.get(req.agreement_id)
    if row.counterparty != peer.uri:
        raise PermissionDenied(f"agreement {row.id} is not {peer.uri}'s to terminate",
                               message_ja="この合意の当事者ではありません", code="not_a_party")
    if row.state != "TERMINATED":
        try:
            given = json.loads(req.reason_json or b"{}")
        except ValueError:
            raise InvalidRequest("reason_json is not JSON", code="invalid_reason") from None
        if not isinstance(given, dict):
            raise InvalidRequest("reason_json must be an object", code="invalid_reason")
        reason = termination_reason(str(given.get("code", "other")), str(given.get("message", "")),
                                    by=peer.uri)
        await store.save(state="TERMINATED", reason=reason, **row.key_fields())
        log.info("agreement terminated by counterparty", extra={"agreement": row.id, "peer": peer.uri})
    return peer_pb2.TerminateResponse(state="TERMINATED")


async def terminate(data_dir: Path, agreement_id: str, code: str, message: str, *,
                    timeout: float = 10.0) -> AgreementRow:
    """End an agreement from this side and notify the counterparty; returns the stored row."""
    state = NodeState.load(data_dir)
    reason = termination_reason(code, message, by=state.identity_uri)
    async with open_contracts_db(data_dir) as db:
        store = AgreementStore(db)
        row = await store.get(agreement_id)
        if row.state == "TERMINATED":
            return row
        await store.save(state="TERMINATED", reason=reason, **row.key_fields())
        keystore = NodeKeyStore(data_dir / "tls")
        registry = RegistryClient(state, keystore, state.registry)
        try:
            async with await dial_peer(registry, keystore, row.counterparty) as channel:
                await peer_pb2_grpc.PeerServiceStub(channel).Terminate(peer_pb2.TerminateRequest(
                    agreement_id=agreement_id, reason_json=canonical_json(
                        {"code": code, "message": message})), timeout=timeout)
            reason["counterparty_notified"] = True
        except grpc.aio.AioRpcError as exc:
            reason["counterparty_notified"] = False
            reason["notify_error"] = from_grpc(exc, what="terminate").message
        except AreameshError as exc:
            reason["counterparty_notified"] = False
            reason["notify_error"] = exc.message
        finally:
            await registry.close()
        await store.save(state="TERMINATED", reason=reason, **row.key_fields())
        return await store.get(agreement_id)
