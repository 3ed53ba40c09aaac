"""UsageLedger: transfers reported by providing connectors, and summaries per billing period.

A report is accepted only from the connector that is the provider of a notarised agreement, for
that agreement's dataset. Each transfer id has one row. A provider reports a transfer when it
ends, complete or interrupted, and again when a resume has grown its counts: a report with
larger counts replaces the row's counts and end time; one with the same or smaller counts (a
retry, or one overtaken by a later report) is a duplicate.
Periods are calendar periods in Japan time (JST), as municipal billing is: ``2026-11`` (month),
``2026`` (year), ``2026-11-24`` (day) or ``2026-11-01..2026-11-15`` (inclusive days).
Summaries credit organisations, not nodes: the provider side is the dataset's publisher (a hosted
tenant apart from its host), the consumer side the consuming participant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from mesh.certs import PeerIdentity
from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import InvalidRequest
from mesh.federation import parse_qualified_uri, qualified_uri
from mesh.ids import parse_node_identity_uri
from mesh.proto.areamesh.v1 import registry_pb2

JST = timezone(timedelta(hours=9), "JST")
_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
MAX_RECORDS_PER_REPORT = 1000
# The organisations of a transfer: the dataset's publisher (a hosted tenant, not its host) and
# the consuming participant; rows written before those columns existed fall back to the nodes'.
PROVIDER_ORG = "COALESCE(provider_org, provider_participant)"
CONSUMER_ORG = "COALESCE(consumer_org, consumer_participant)"


@dataclass(frozen=True)
class Period:
    label: str
    start: datetime   # inclusive, JST
    end: datetime     # exclusive, JST

    def to_json(self) -> dict[str, str]:
        return {"label": self.label, "from": self.start.isoformat(), "to": self.end.isoformat()}


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"period: {text!r} is not a date (YYYY-MM-DD)",
                             message_ja=f"期間の日付 {text!r} が正しくありません",
                             code="invalid_period") from None


def parse_period(text: str | None, *, now: datetime | None = None) -> Period:
    """``None`` (no parameter) means the current month in JST; an empty value is an error."""
    if text is None:
        today = (now or utcnow()).astimezone(JST)
        text = f"{today:%Y-%m}"
    if ".." in text:
        first, _, last = text.partition("..")
        a, b = _day(first), _day(last)
        if b < a:
            raise InvalidRequest(f"period {text!r} ends before it starts", code="invalid_period",
                                 message_ja="期間の終わりが始まりより前です")
        if b == date.max:
            raise InvalidRequest(f"period {text!r} ends after the last day there is",
                                 code="invalid_period", message_ja="期間の終わりが範囲外です")
        return Period(text, datetime.combine(a, datetime.min.time(), JST),
                      datetime.combine(b + timedelta(days=1), datetime.min.time(), JST))
    m = _PERIOD.match(text)
    if not m:
        raise InvalidRequest(f"period {text!r}: use YYYY, YYYY-MM, YYYY-MM-DD or FROM..TO",
                             message_ja=f"期間 {text!r} は YYYY、YYYY-MM、YYYY-MM-DD、"
                                        "FROM..TO で指定してください",
                             code="invalid_period")
    year, month, day = int(m[1]), m[2], m[3]
    try:
        if day:
            start = datetime(year, int(month), int(day), tzinfo=JST)
            return Period(text, start, start + timedelta(days=1))
        if month:
            start = datetime(year, int(month), 1, tzinfo=JST)
            nxt = datetime(year + (int(month) == 12), int(month) % 12 + 1, 1, tzinfo=JST)
            return Period(text, start, nxt)
        return Period(text, datetime(year, 1, 1, tzinfo=JST), datetime(year + 1, 1, 1, tzinfo=JST))
    except ValueError:
        raise InvalidRequest(f"period {text!r} is not a real date", code="invalid_period",
                             message_ja=f"期間 {text!r} は存在しない日付です") from None


def _participant(uri: str) -> str:
    qualified = parse_qualified_uri(uri)   # a party of a federated mesh (mesh.federation)
    parsed = parse_node_identity_uri(qualified[1] if qualified else uri)
    return parsed[0] if parsed else uri


async def peer_names(conn, peer: PeerIdentity) -> tuple[str, str]:
    """The URIs a node of this mesh goes by in notarised agreements: plain, and mesh-qualified
    (across meshes, mesh.federation)."""
    row = await (await conn.execute("SELECT value FROM meta WHERE key = 'mesh_id'")).fetchone()
    return peer.uri, qualified_uri(row[0] if row else "default", peer.participant_id,
                                   peer.node_name)


class UsageLedger:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def record(self, peer: PeerIdentity, records: list[registry_pb2.UsageRecord]
                     ) -> registry_pb2.ReportUsageResponse:
        if len(records) > MAX_RECORDS_PER_REPORT:
            raise InvalidRequest(f"at most {MAX_RECORDS_PER_REPORT} usage records per report",
                                 code="too_many_records")
        reply = registry_pb2.ReportUsageResponse()
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            for r in records:
                notarised, rejected = await self._check(conn, peer, r)
                if rejected:
                    reply.rejected.append(registry_pb2.RejectedUsage(
                        transfer_id=r.transfer_id, code=rejected[0], message=rejected[1]))
                    continue
                held = await (await conn.execute(
                    "SELECT agreement_id, provider_node, records, bytes, batches FROM usage_records "
                    "WHERE transfer_id = ?", (r.transfer_id,))).fetchone()
                if held is None:
                    provider = _participant(notarised["provider"])
                    publisher = await (await conn.execute(
                        "SELECT publisher_id FROM datasets WHERE id = ?", (r.dataset_id,))
                                       ).fetchone()
                    await conn.execute(
                        "INSERT INTO usage_records(transfer_id, agreement_id, dataset_id, "
                        "provider_participant, consumer_participant, provider_node, consumer_node, "
                        "records, bytes, batches, incremental, started_at, ended_at, reported_at, "
                        "provider_org, consumer_org) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (r.transfer_id, r.agreement_id, r.dataset_id,
                         provider, _participant(notarised["consumer"]),
                         notarised["provider"], notarised["consumer"], r.records, r.bytes,
                         r.batches, int(r.incremental), iso(r.started_at.ToDatetime(UTC)),
                         iso(r.ended_at.ToDatetime(UTC)), now,
                         publisher[0] if publisher else provider,
                         _participant(notarised["consumer"])))
                    reply.accepted += 1
                elif held["agreement_id"] != r.agreement_id or \
                        held["provider_node"] not in await peer_names(conn, peer):
                    reply.rejected.append(registry_pb2.RejectedUsage(
                        transfer_id=r.transfer_id, code="transfer_id_conflict",
                        message=f"transfer {r.transfer_id} is recorded for another agreement"))
                elif _grown((r.records, r.bytes, r.batches),
                            (held["records"], held["bytes"], held["batches"])):
                    await conn.execute(
                        "UPDATE usage_records SET records = ?, bytes = ?, batches = ?, ended_at = ?, "
                        "reported_at = ? WHERE transfer_id = ?",
                        (r.records, r.bytes, r.batches, iso(r.ended_at.ToDatetime(UTC)), now,
                         r.transfer_id))
                    reply.accepted += 1
                else:
                    reply.duplicates += 1
        return reply

    async def _check(self, conn, peer: PeerIdentity, r: registry_pb2.UsageRecord):
        """(the agreement's notarisation row, None) when ``r`` may be recorded, else (None,
        (code, message))."""
        if not r.transfer_id or len(r.transfer_id) > 64:
            return None, ("invalid_counts", "transfer_id must be 1-64 characters")
        if min(r.records, r.bytes, r.batches) < 0 or not r.ended_at.seconds:
            return None, ("invalid_counts", "counts must not be negative and ended_at is required")
        row = await (await conn.execute(
            "SELECT dataset_id, provider, consumer FROM notarisations WHERE agreement_id = ? LIMIT 1",
            (r.agreement_id,))).fetchone()
        if row is None:
            return None, ("unknown_agreement", f"agreement {r.agreement_id} was never notarised")
        if row["provider"] not in await peer_names(conn, peer):
            return None, ("not_the_provider", f"{peer.uri} is not the provider of agreement {r.agreement_id}")
        if row["dataset_id"] != r.dataset_id:
            return None, ("dataset_mismatch",
                          f"agreement {r.agreement_id} is for {row['dataset_id']}, not {r.dataset_id}")
        return row, None

    async def summary(self, period: Period, names: dict[str, str], *, only: str | None = None
                      ) -> dict[str, Any]:
        """Per participant and in total; ``only``: that participant's own figures, its totals
        over the transfers it took part in (other participants are left out)."""
        start = iso(period.start.astimezone(UTC))
        end = iso(period.end.astimezone(UTC))
        per: dict[str, dict[str, Any]] = {}
        scope, params = "ended_at >= ? AND ended_at < ?", [start, end]
        if only is not None:
            scope += f" AND ({PROVIDER_ORG} = ? OR {CONSUMER_ORG} = ?)"
            params += [only, only]

        def entry(pid: str) -> dict[str, Any]:
            return per.setdefault(pid, {"id": pid, "name": names.get(pid, ""),
                                        "provided": _zero(), "consumed": _zero()})

        for side, column in (("provided", PROVIDER_ORG), ("consumed", CONSUMER_ORG)):
            rows = await self.db.fetchall(
                f"SELECT {column} AS pid, COUNT(*) AS t, SUM(records) AS r, SUM(bytes) AS b, "
                "COUNT(DISTINCT agreement_id) AS a FROM usage_records "
                f"WHERE {scope} GROUP BY {column}", params)
            for row in rows:
                if only is not None and row["pid"] != only:
                    continue
                entry(row["pid"])[side] = {"transfers": row["t"], "records": row["r"] or 0,
                                           "bytes": row["b"] or 0, "agreements": row["a"]}
        total = await self.db.fetchone(
            "SELECT COUNT(*) AS t, COALESCE(SUM(records), 0) AS r, COALESCE(SUM(bytes), 0) AS b "
            f"FROM usage_records WHERE {scope}", params)
        assert total is not None
        return {"period": period.to_json(),
                "participants": sorted(per.values(), key=lambda p: p["id"]),
                "totals": {"transfers": total["t"], "records": total["r"], "bytes": total["b"]}}


def _grown(new: tuple[int, ...], held: tuple[int, ...]) -> bool:
    """Counts of a later report on the same transfer: none smaller, some larger."""
    return new != held and all(a >= b for a, b in zip(new, held, strict=True))


def _zero() -> dict[str, int]:
    return {"transfers": 0, "records": 0, "bytes": 0, "agreements": 0}
