"""TransferAcks: the provider's side of ``PeerService.AcknowledgeTransfer``.

The consumer says which batch it has durably received, with the stream digest up to it. The
provider checks that the caller is the transfer's consumer on the same agreement
(``not_a_party``), that the batch was sent (``ack_beyond_sent``) and that the digest is the one
it sent up to that batch (``ack_chain_mismatch``), then raises ``acked_seq`` in metering.db
(``UsageStore.acknowledge``; acks going backwards change nothing). The ack of the last batch,
once the summary has left, completes the transfer; from then on it cannot be asked for again.

The digests of the batches sent are kept in memory per transfer (``SentChains``: one dict entry
per batch, at most 4 MiB of data each, for the most recent transfers); a resume recomputes them
all, and the digest at the last batch sent is also saved with the counts (``sent_chain``), so the
final ack can be checked after a restart. An ack that can be checked neither way is refused
(``ack_unverifiable``): the consumer's next resume acknowledges it instead.
"""

from __future__ import annotations

import collections
import logging
import re

from connector.metering.store import UsageStore
from connector.transfer.batches import CHAIN_START
from mesh.certs import PeerIdentity
from mesh.errors import FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from mesh.proto.areamesh.v1 import peer_pb2

log = logging.getLogger("areamesh.connector.transfer")
KEEP_TRANSFERS = 256        # transfers whose per-batch digests stay in memory
_CHAIN = re.compile(r"[0-9a-f]{64}")


class SentChains:
    """seq → stream digest of the batches sent, per transfer, for the most recent transfers."""

    def __init__(self, keep: int = KEEP_TRANSFERS) -> None:
        self.keep = keep
        self._by_transfer: collections.OrderedDict[str, dict[int, str]] = collections.OrderedDict()

    def track(self, transfer_id: str) -> dict[int, str]:
        """The dict a stream fills (``chains[seq] = chain`` before the batch leaves)."""
        chains = self._by_transfer.setdefault(transfer_id, {})
        self._by_transfer.move_to_end(transfer_id)
        while len(self._by_transfer) > self.keep:
            self._by_transfer.popitem(last=False)
        return chains

    def get(self, transfer_id: str) -> dict[int, str]:
        return self._by_transfer.get(transfer_id, {})

    def forget(self, transfer_id: str) -> None:
        self._by_transfer.pop(transfer_id, None)


class TransferAcks:
    def __init__(self, usage: UsageStore, chains: SentChains) -> None:
        self.usage = usage
        self.chains = chains

    async def acknowledge(self, peer: PeerIdentity, req: peer_pb2.AcknowledgeTransferRequest
                          ) -> peer_pb2.AcknowledgeTransferResponse:
        if req.acked_seq < 0 or not _CHAIN.fullmatch(req.chain):
            raise InvalidRequest("acked_seq must be ≥ 0 and chain the stream digest (64 hex digits)",
                                 message_ja="受信確認の内容が不正です", code="invalid_ack")
        try:
            row = await self.usage.get(req.transfer_id, role="provider")
        except NotFound:
            raise NotFound(f"this provider has no transfer {req.transfer_id}",
                           message_ja=f"転送 {req.transfer_id} はありません",
                           code="unknown_transfer") from None
        if row.agreement_id != req.agreement_id or row.consumer != peer.uri:
            log.warning("transfer %s acknowledged by %s, a non-party", row.id, peer.uri)
            raise PermissionDenied(f"transfer {row.id} does not belong to this agreement and consumer",
                                   message_ja="この転送は別の合意・利用者のものです", code="not_a_party")
        if req.acked_seq < row.acked_seq or (req.acked_seq == row.acked_seq
                                             and row.status != "sent"):
            return peer_pb2.AcknowledgeTransferResponse(acked_seq=row.acked_seq,
                                                        complete=row.status == "complete")
        sent = self.chains.get(row.id)
        last_sent = max(max(sent, default=0), row.batches)
        if req.acked_seq > last_sent:
            raise InvalidRequest(
                f"batch {req.acked_seq} of transfer {row.id} was never sent (sent: {last_sent})",
                message_ja=f"転送 {row.id} で送信済みのバッチは {last_sent} までです",
                code="ack_beyond_sent", details={"sent": last_sent})
        expected = sent.get(req.acked_seq) or (
            row.sent_chain if req.acked_seq == row.batches else None) or (
            CHAIN_START if req.acked_seq == 0 else None)
        if expected is None:
            raise FailedPrecondition(
                f"batch {req.acked_seq} of transfer {row.id} cannot be checked now; resuming "
                "after it acknowledges it", code="ack_unverifiable",
                message_ja="この受信確認は現在確認できません（再開時に確認されます）")
        if expected != req.chain:
            log.warning("transfer %s: ack of batch %d with a digest not sent, from %s", row.id,
                        req.acked_seq, peer.uri)
            raise InvalidRequest(
                f"the digest up to batch {req.acked_seq} of transfer {row.id} is not what was sent",
                message_ja="受信確認のダイジェストが送信したデータと一致しません",
                code="ack_chain_mismatch")
        acked, complete = await self.usage.acknowledge(row.id, req.acked_seq)
        if complete:
            self.chains.forget(row.id)
            log.debug("transfer acknowledged complete", extra={"transfer": row.id,
                                                               "batches": acked})
        return peer_pb2.AcknowledgeTransferResponse(acked_seq=acked, complete=complete)
