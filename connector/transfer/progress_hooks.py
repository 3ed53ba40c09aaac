"""What a fetch tells about its progress (``Progress``), and the consumer's agreement check it
starts with: light, so the console's pages use them without loading the data plane."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mesh.agreements import SignedAgreement, verify_signed
from mesh.clock import from_iso, utcnow
from mesh.errors import FailedPrecondition, PermissionDenied

if TYPE_CHECKING:
    from connector.contracts.store import AgreementRow
    from connector.transfer.journal import TransferJournal
    from mesh.proto.areamesh.v1 import peer_pb2


class Progress:
    """What the CLI shows; the default shows nothing."""

    def start(self, header: peer_pb2.TransferHeader, journal: TransferJournal) -> None: ...
    def advance(self, journal: TransferJournal) -> None: ...
    def note(self, message: str) -> None: ...
    def done(self) -> None: ...


def check_consumer_agreement(row: AgreementRow, roots, federated=None) -> None:
    """The consumer's own copy of the agreement allows a fetch now: FINALIZED, signed by both
    (checked against ``roots``, and ``federated`` roots by mesh for a provider of a federated
    mesh), not expired."""
    if row.state == "TERMINATED":
        raise PermissionDenied(f"agreement {row.id} is terminated",
                               message_ja=f"合意 {row.id} は終了しています", code="agreement_terminated",
                               details={"reason": row.reason})
    if row.state != "FINALIZED" or row.signed is None:
        raise FailedPrecondition(f"agreement {row.id} is {row.state}, not FINALIZED",
                                 message_ja=f"合意 {row.id} は確定していません（{row.state}）",
                                 code="agreement_not_finalized")
    signed = SignedAgreement.from_json(row.signed)
    verify_signed(signed, roots, federated=federated)
    if signed.agreement.expires and from_iso(signed.agreement.expires) <= utcnow():
        raise PermissionDenied(f"agreement {row.id} expired at {signed.agreement.expires}",
                               code="agreement_expired")
