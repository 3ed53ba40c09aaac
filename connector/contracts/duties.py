"""DutyBook: the state of every duty of this connector's agreements, as provider and as consumer.

An agreement's policy may carry duties (``delete`` within P90D, ``reportUsage``, ``attribute``;
docs/policies.md). Both sides keep one row per duty in ``contracts.db`` (table ``duties``) and
derive its state from the signed agreement, the transfers metered under it and the consumer's
confirmations:

- the clock starts with the first transfer that carried records and is not yet covered by a
  confirmation (``data_since``, the transfer's start: data may be held from then on);
- ``due_at`` is ``data_since`` plus the duty's ``elapsedTime``; a duty without one is due when the
  agreement expires, or never;
- **fulfilled**: the consumer confirmed it after the last such transfer; **overdue**: not fulfilled
  and ``due_at`` has passed; **pending** otherwise (also before any data has left).

A new transfer after a confirmation opens the duty again, with its own clock. The consumer
confirms a duty with ``areamesh connector contract duty confirm``: its connector calls the
provider's ``PeerService.ConfirmDuty`` over mTLS, where only the agreement's consumer (by its
certificate) is heard; both sides then record the provider's time of the confirmation. The
provider reports its duties to the registry (``DutyReporter``), which shows overdue ones to the
operating organisation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from connector.contracts.store import AgreementRow, AgreementStore
from connector.metering.store import UsageStore
from connector.registry_client import RegistryClient
from mesh.agreements import SignedAgreement
from mesh.certs import PeerIdentity
from mesh.clock import from_iso, iso, timestamp, utcnow
from mesh.db import Database
from mesh.errors import AreameshError, FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from mesh.policy import Duty, PolicyError, parse_policy
from mesh.proto.areamesh.v1 import peer_pb2, registry_pb2

log = logging.getLogger("areamesh.connector.contracts")

STATES = ("pending", "fulfilled", "overdue")
POKE_GAP = 0.5          # seconds: reports asked for by ending transfers, at most this often
MAX_NOTE = 500


@dataclass(frozen=True)
class DutyState:
    agreement_id: str
    duty_index: int
    role: str
    action: str
    within: str | None          # the duty's elapsedTime as written, e.g. P90D
    dataset_id: str
    counterparty: str
    state: str
    data_since: str | None
    due_at: str | None
    confirmed_at: str | None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def snapshot(self) -> str:
        """What the registry was last told, to send only changes."""
        return json.dumps([self.state, self.data_since, self.due_at, self.confirmed_at])

    def to_proto(self) -> peer_pb2.DutyState:
        return peer_pb2.DutyState(
            agreement_id=self.agreement_id, duty_index=self.duty_index, action=self.action,
            within=self.within or "", state=self.state, data_since=_ts(self.data_since),
            due_at=_ts(self.due_at), confirmed_at=_ts(self.confirmed_at))

    def to_report(self) -> registry_pb2.DutyReport:
        return registry_pb2.DutyReport(
            agreement_id=self.agreement_id, duty_index=self.duty_index, action=self.action,
            within=self.within or "", state=self.state, data_since=_ts(self.data_since),
            due_at=_ts(self.due_at), confirmed_at=_ts(self.confirmed_at))


def _ts(text: str | None) -> Timestamp:
    return timestamp(from_iso(text)) if text else Timestamp()


def _within_text(duty: Duty) -> str | None:
    """The duty's tightest elapsedTime as written (``Duty.within`` is its length)."""
    limits = [c for c in duty.constraints if c.left_operand == "elapsedTime"]
    if not limits:
        return None
    return str(min(limits, key=lambda c: Duty(duty.action, (c,)).within).right_operand)


def derive(duty: Duty, *, data_times: list[str], confirmed_at: str | None, expires: str | None,
           now: datetime) -> tuple[str, str | None, str | None]:
    """(state, data_since, due_at) of one duty; ``data_times`` are the starts of the transfers
    under the agreement that carried records."""
    open_since = sorted(t for t in data_times if confirmed_at is None or t > confirmed_at)
    if not open_since:
        return ("fulfilled" if confirmed_at else "pending"), None, None
    since = open_since[0]
    within = duty.within
    due = iso(from_iso(since) + within) if within is not None else expires
    state = "overdue" if due is not None and from_iso(due) <= now else "pending"
    return state, since, due


class DutyBook:
    """The duties table of ``contracts.db``; transfers come from ``metering.db``."""

    def __init__(self, db: Database, agreements: AgreementStore, usage: UsageStore) -> None:
        self.db = db
        self.agreements = agreements
        self.usage = usage

    async def refresh(self, *, agreement_id: str | None = None, role: str | None = None,
                      now: datetime | None = None) -> list[DutyState]:
        """Derive every duty's state now, store it and return it (oldest agreement first)."""
        now = now or utcnow()
        rows = [await self.agreements.get(agreement_id)] if agreement_id else \
            list(reversed(await self.agreements.list()))
        states: list[DutyState] = []
        for row in rows:
            if (role and row.role != role) or row.digest is None or row.signed is None:
                continue  # never FINALIZED: no duty was ever accepted
            states.extend(await self._refresh_one(row, now))
        return states

    async def _refresh_one(self, row: AgreementRow, now: datetime) -> list[DutyState]:
        agreement = SignedAgreement.from_json(row.signed or {}).agreement
        try:
            duties = parse_policy(agreement.policy).duties
        except PolicyError as exc:  # signed under rules this version no longer accepts
            log.warning("duties of agreement %s unreadable: %s", row.id, exc.message)
            return []
        if not duties:
            return []
        stored = {r["duty_index"]: r for r in await self.db.fetchall(
            "SELECT duty_index, state, data_since, due_at, confirmed_at, note FROM duties "
            "WHERE agreement_id = ?", (row.id,))}
        out, changed = [], []
        for i, duty in enumerate(duties):
            old = stored.get(i)
            confirmed = old["confirmed_at"] if old else None
            # only the first transfer with records after the confirmation matters: asked for
            # alone (a polling app's agreement has thousands of transfers)
            first = await self.usage.first_data_since(row.id, row.role, confirmed)
            state, since, due = derive(duty, data_times=[first] if first else [], confirmed_at=confirmed,
                                       expires=agreement.expires, now=now)
            s = DutyState(row.id, i, row.role, duty.action, _within_text(duty), row.dataset_id,
                          row.counterparty, state, since, due, confirmed, old["note"] if old else "")
            out.append(s)
            if old is None or (old["state"], old["data_since"], old["due_at"]) != (state, since, due):
                changed.append(s)
        if not changed:
            return out
        async with self.db.transaction() as conn:  # only what changed: this runs every heartbeat
            for s in changed:
                await conn.execute(
                    "INSERT INTO duties(agreement_id, duty_index, role, action, within, dataset_id, "
                    "counterparty, state, data_since, due_at, confirmed_at, note, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(agreement_id, duty_index) "
                    "DO UPDATE SET state = excluded.state, data_since = excluded.data_since, "
                    "due_at = excluded.due_at, updated_at = excluded.updated_at",
                    (s.agreement_id, s.duty_index, s.role, s.action, s.within, s.dataset_id,
                     s.counterparty, s.state, s.data_since, s.due_at, s.confirmed_at, s.note, iso(now)))
        return out

    async def record_confirmation(self, agreement_id: str, duty_index: int, confirmed_at: str,
                                  note: str) -> DutyState:
        """Store a confirmation (idempotent: the later time wins) and return the new state."""
        states = await self.refresh(agreement_id=agreement_id)  # makes sure the row exists
        if not 0 <= duty_index < len(states):
            raise NotFound(f"agreement {agreement_id} has no duty {duty_index}",
                           message_ja=f"合意 {agreement_id} に義務 {duty_index} はありません",
                           code="unknown_duty")
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE duties SET confirmed_at = MAX(COALESCE(confirmed_at, ''), ?), note = ? "
                "WHERE agreement_id = ? AND duty_index = ?", (confirmed_at, note, agreement_id,
                                                              duty_index))
        return (await self.refresh(agreement_id=agreement_id))[duty_index]

    async def unreported(self) -> list[DutyState]:
        """The provider's duties whose state differs from what the registry last acknowledged."""
        states = await self.refresh(role="provider")
        reported = {(r["agreement_id"], r["duty_index"]): r["reported"] for r in await self.db.fetchall(
            "SELECT agreement_id, duty_index, reported FROM duties WHERE role = 'provider'")}
        return [s for s in states if reported.get((s.agreement_id, s.duty_index)) != s.snapshot()]

    async def mark_reported(self, states: list[DutyState]) -> None:
        async with self.db.transaction() as conn:
            await conn.executemany(
                "UPDATE duties SET reported = ? WHERE agreement_id = ? AND duty_index = ?",
                [(s.snapshot(), s.agreement_id, s.duty_index) for s in states])


def resolve_duty(states: list[DutyState], duty: str) -> DutyState:
    """The duty named by its index or its action (which must then be unique)."""
    if duty.isdigit():
        found = [s for s in states if s.duty_index == int(duty)]
    else:
        found = [s for s in states if s.action == duty]
        if len(found) > 1:
            raise InvalidRequest(f"the agreement has {len(found)} {duty} duties; name one by index "
                                 f"({', '.join(str(s.duty_index) for s in found)})",
                                 message_ja="同じ種類の義務が複数あります。番号で指定してください",
                                 code="ambiguous_duty")
    if not found:
        known = ", ".join(f"{s.duty_index}:{s.action}" for s in states) or "none"
        raise NotFound(f"no duty {duty!r} in the agreement (duties: {known})",
                       message_ja=f"義務 {duty} はこの合意にありません", code="unknown_duty")
    return found[0]


async def accept_confirmation(book: DutyBook, peer: PeerIdentity, req: peer_pb2.ConfirmDutyRequest,
                              on_change=lambda: None) -> peer_pb2.DutyState:
    """Served by ``PeerService.ConfirmDuty`` on the provider: only the agreement's consumer."""
    if len(req.note) > MAX_NOTE:
        raise InvalidRequest(f"note is longer than {MAX_NOTE} characters", code="invalid_note",
                             message_ja=f"備考は{MAX_NOTE}文字以内にしてください")
    row = await book.agreements.get(req.agreement_id, role="provider")
    consumer = SignedAgreement.from_json(row.signed).agreement.consumer if row.signed else None
    if consumer is None or row.digest is None:
        raise FailedPrecondition(f"agreement {row.id} was never finalized; it has no duties",
                                 message_ja="この合意は確定していません", code="agreement_not_finalized")
    if peer.uri != consumer:
        log.warning("duty confirmation refused", extra={"agreement": row.id, "peer": peer.uri})
        raise PermissionDenied(f"only the consumer of agreement {row.id} ({consumer}) may confirm its "
                               f"duties, not {peer.uri}",
                               message_ja="義務の履行を報告できるのはこの合意の利用者だけです",
                               code="not_the_consumer")
    states = await book.refresh(agreement_id=row.id)
    target = resolve_duty(states, str(req.duty_index))
    if req.action and req.action != target.action:
        raise InvalidRequest(f"duty {req.duty_index} of agreement {row.id} is {target.action}, "
                             f"not {req.action}", message_ja="義務の種類が一致しません",
                             code="duty_mismatch")
    state = await book.record_confirmation(row.id, target.duty_index, iso(utcnow()), req.note)
    log.info("duty confirmed by consumer", extra={"agreement": row.id, "peer": peer.uri,
                                                  "duty": target.action})
    on_change()
    return state.to_proto()


class DutyReporter:
    """Sends the provider's changed duty states to the registry; like ``UsageReporter`` it runs
    every heartbeat interval and when poked (a transfer ended, a duty was confirmed). A state is
    marked reported only once the registry answered, so an outage only delays it."""

    def __init__(self, book: DutyBook, registry: RegistryClient) -> None:
        self.book = book
        self.registry = registry
        self._wake = asyncio.Event()

    def poke(self) -> None:
        self._wake.set()

    async def report_once(self) -> int:
        states = await self.book.unreported()
        if not states:
            return 0
        reply = await self.registry.report_duties([s.to_report() for s in states])
        refused = {(r.agreement_id, r.duty_index) for r in reply.rejected}
        for r in reply.rejected:
            log.warning("duty report refused: %s", r.message,
                        extra={"agreement": r.agreement_id, "code": r.code})
        await self.book.mark_reported([s for s in states
                                       if (s.agreement_id, s.duty_index) not in refused])
        return reply.accepted

    async def run(self, interval: float, min_gap: float = POKE_GAP) -> None:
        """Report every ``interval`` seconds, and when poked, but at most once per ``min_gap``:
        many small transfers end many times a second, and each report covers all of them."""
        while True:
            try:
                await self.report_once()
            except AreameshError as exc:
                log.warning("duty report deferred: %s", exc.message)
            reported = time.monotonic()
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
                await asyncio.sleep(max(0.0, reported + min_gap - time.monotonic()))
            except TimeoutError:
                pass
