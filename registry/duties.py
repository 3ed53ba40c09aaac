"""DutyRegister: the duties of notarised agreements, as their providers report them.

A providing connector reports each duty's state (``ReportDuties``): action, elapsedTime, when
data first left without a confirmation since, when it is due and when the consumer last
confirmed it. Only the provider of a notarised agreement is heard, for that agreement; the
parties are taken from the notarisation, never from the report. The latest report of a duty
replaces the earlier one. The state shown is derived again at read time from the due time, so a
duty falls overdue here even if its provider has gone quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mesh.certs import PeerIdentity
from mesh.clock import from_iso, iso, utcnow
from mesh.db import Database
from mesh.errors import InvalidRequest
from mesh.ids import parse_node_identity_uri
from mesh.proto.areamesh.v1 import registry_pb2

STATES = ("pending", "fulfilled", "overdue")
ACTIONS = ("delete", "reportUsage", "attribute")
MAX_DUTIES_PER_REPORT = 1000
MAX_INDEX = 20  # mesh.policy LIMITS["duties"]
DUTIES_MIGRATION = """
    CREATE TABLE agreement_duties (
        agreement_id TEXT NOT NULL,
        duty_index INTEGER NOT NULL,
        dataset_id TEXT NOT NULL,
        provider_participant TEXT NOT NULL,
        consumer_participant TEXT NOT NULL,
        provider_node TEXT NOT NULL,
        consumer_node TEXT NOT NULL,
        action TEXT NOT NULL,
        within TEXT,
        reported_state TEXT NOT NULL,
        data_since TEXT,
        due_at TEXT,
        confirmed_at TEXT,
        reported_at TEXT NOT NULL,
        PRIMARY KEY (agreement_id, duty_index)
    );
    CREATE INDEX agreement_duties_by_due ON agreement_duties(due_at)
"""


@dataclass(frozen=True)
class DutyRecord:
    agreement_id: str
    duty_index: int
    dataset_id: str
    provider: str
    consumer: str
    provider_node: str
    consumer_node: str
    action: str
    within: str | None
    state: str
    data_since: str | None
    due_at: str | None
    confirmed_at: str | None
    reported_at: str

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _participant(uri: str) -> str:
    parsed = parse_node_identity_uri(uri)
    return parsed[0] if parsed else uri


def _time(ts) -> str | None:
    return iso(ts.ToDatetime(tzinfo=UTC)) if ts.seconds or ts.nanos else None


def state_now(reported: str, due_at: str | None, now: datetime) -> str:
    """Fulfilled as reported; otherwise overdue once the due time has passed."""
    if reported == "fulfilled":
        return "fulfilled"
    return "overdue" if due_at is not None and from_iso(due_at) <= now else "pending"


class DutyRegister:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, peer: PeerIdentity, duties: list[registry_pb2.DutyReport]
                     ) -> registry_pb2.ReportDutiesResponse:
        if len(duties) > MAX_DUTIES_PER_REPORT:
            raise InvalidRequest(f"at most {MAX_DUTIES_PER_REPORT} duties per report",
                                 code="too_many_duties")
        reply = registry_pb2.ReportDutiesResponse()
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            for d in duties:
                notarised, problem = await self._check(conn, peer, d)
                if problem:
                    reply.rejected.append(registry_pb2.RejectedDuty(
                        agreement_id=d.agreement_id, duty_index=d.duty_index, code=problem[0],
                        message=problem[1]))
                    continue
                await conn.execute(
                    "INSERT INTO agreement_duties(agreement_id, duty_index, dataset_id, "
                    "provider_participant, consumer_participant, provider_node, consumer_node, action, "
                    "within, reported_state, data_since, due_at, confirmed_at, reported_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(agreement_id, duty_index) DO UPDATE SET action = excluded.action, "
                    "within = excluded.within, reported_state = excluded.reported_state, "
                    "data_since = excluded.data_since, due_at = excluded.due_at, "
                    "confirmed_at = excluded.confirmed_at, reported_at = excluded.reported_at",
                    (d.agreement_id, d.duty_index, notarised["dataset_id"],
                     _participant(notarised["provider"]), _participant(notarised["consumer"]),
                     notarised["provider"], notarised["consumer"], d.action, d.within or None,
                     d.state, _time(d.data_since), _time(d.due_at), _time(d.confirmed_at), now))
                reply.accepted += 1
        return reply

    async def _check(self, conn, peer: PeerIdentity, d: registry_pb2.DutyReport):
        if d.action not in ACTIONS or d.state not in STATES or not 0 <= d.duty_index < MAX_INDEX \
                or len(d.within) > 40:
            return None, ("invalid_duty", f"duty {d.duty_index} of {d.agreement_id}: action must be "
                          f"one of {', '.join(ACTIONS)}, state one of {', '.join(STATES)}, index "
                          f"0-{MAX_INDEX - 1}")
        row = await (await conn.execute(
            "SELECT dataset_id, provider, consumer FROM notarisations WHERE agreement_id = ? LIMIT 1",
            (d.agreement_id,))).fetchone()
        if row is None:
            return None, ("unknown_agreement", f"agreement {d.agreement_id} was never notarised")
        if row["provider"] != peer.uri:
            return None, ("not_the_provider",
                          f"{peer.uri} is not the provider of agreement {d.agreement_id}")
        return row, None

    async def list(self, *, state: str | None = None, now: datetime | None = None) -> list[DutyRecord]:
        """Every duty held, as of ``now``; ``state`` keeps one state. Soonest due first."""
        if state is not None and state not in STATES:
            raise InvalidRequest(f"state must be one of {', '.join(STATES)}, not {state!r}",
                                 message_ja=f"state は {'、'.join(STATES)} のいずれかです",
                                 code="invalid_state")
        now = now or utcnow()
        rows = await self.db.fetchall(
            "SELECT * FROM agreement_duties ORDER BY due_at IS NULL, due_at, agreement_id, duty_index")
        out = [DutyRecord(r["agreement_id"], r["duty_index"], r["dataset_id"],
                          r["provider_participant"], r["consumer_participant"], r["provider_node"],
                          r["consumer_node"], r["action"], r["within"],
                          state_now(r["reported_state"], r["due_at"], now), r["data_since"],
                          r["due_at"], r["confirmed_at"], r["reported_at"]) for r in rows]
        return [d for d in out if state is None or d.state == state]
