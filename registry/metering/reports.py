"""UsageReports: signed usage reports from connectors, both sides of a transfer kept apart.

A report (mesh/usage_reports.py) is accepted only when its signature verifies against the mesh
CA, it names the node that made the mTLS call, and it was made no later than a few minutes from
now. Every accepted document is kept verbatim in ``usage_reports`` for audit (one row per
distinct document). Then, by its role:

- ``provider``: the transfers go to ``UsageLedger.record`` (the authoritative counts, as before).
- ``consumer``: the transfers go to ``usage_consumer_records``, one row per transfer id, under
  the same rules as the provider's (the caller must be the consumer of the notarised agreement,
  for its dataset; counts only grow). They never change the provider's figures: they are what
  ``crosscheck`` compares them with.

Consent counts, whatever the role: the dataset must be in the catalog and served by the calling
node; the latest count per (node, dataset, JST day) is kept (an older document replayed later
does not overwrite a newer count). Only the integers are stored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, timedelta
from typing import Any

from cryptography import x509
from google.protobuf.timestamp_pb2 import Timestamp

from mesh.certs import PeerIdentity
from mesh.clock import from_iso, iso, utcnow
from mesh.db import Database
from mesh.errors import InvalidRequest, PermissionDenied
from mesh.ids import parse_node_identity_uri
from mesh.proto.areamesh.v1 import registry_pb2
from mesh.usage_reports import SignedUsageReport, verify_report
from registry.metering.usage import JST, UsageLedger, _grown, peer_names

log = logging.getLogger("areamesh.registry.metering")
MAX_CLOCK_SKEW = timedelta(minutes=5)


def _ts(text: str) -> Timestamp:
    ts = Timestamp()
    if text:
        ts.FromDatetime(from_iso(text))
    return ts


def parse_signed(raw: bytes) -> SignedUsageReport:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("the usage report is not JSON", message_ja="利用量報告が JSON ではありません",
                             code="malformed_usage_report") from None
    return SignedUsageReport.from_json(doc)


class UsageReports:
    def __init__(self, db: Database, roots: list[x509.Certificate]) -> None:
        self.db = db
        self.roots = roots
        self.ledger = UsageLedger(db)

    async def submit(self, peer: PeerIdentity, request: registry_pb2.ReportUsageRequest
                     ) -> registry_pb2.ReportUsageResponse:
        if not request.signed_report_json:
            raise PermissionDenied(
                "usage reports must be signed by the reporting node (signed_report_json); "
                "unsigned records are refused", message_ja="利用量報告には報告ノードの署名が必要です",
                code="usage_report_unsigned")
        signed = parse_signed(request.signed_report_json)
        report = signed.report
        try:
            verify_report(signed, self.roots)
            if report.node != peer.uri:
                raise PermissionDenied(
                    f"the usage report is by node {report.node}, but the caller is {peer.uri}: a "
                    "node can only hand in its own reports",
                    message_ja="利用量報告の署名ノードと送信元ノードが一致しません",
                    code="usage_report_wrong_node")
            if from_iso(report.made) > utcnow() + MAX_CLOCK_SKEW:
                raise InvalidRequest(f"usage report {report.seq} is dated in the future "
                                     f"({report.made})", message_ja="報告の日時が未来です",
                                     code="usage_report_from_future")
        except (PermissionDenied, InvalidRequest) as exc:
            log.warning("usage report refused [%s]: %s", exc.code, exc.message,
                        extra={"peer": peer.uri, "code": exc.code, "seq": report.seq})
            raise
        document = request.signed_report_json.decode()
        digest = "sha256:" + hashlib.sha256(request.signed_report_json).hexdigest()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO usage_reports(node, seq, role, digest, signed_json, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?)",
                (report.node, report.seq, report.role, digest, document, iso(utcnow())))
        if report.role == "provider":
            reply = await self.ledger.record(peer, [_record(r) for r in report.records])
        else:
            reply = await self.record_consumer(peer, report.records)
        await self._consent_counts(peer, report.made, report.consent_counts, reply)
        reply.report_digest = digest
        return reply

    async def record_consumer(self, peer: PeerIdentity, records: list[dict[str, Any]]
                              ) -> registry_pb2.ReportUsageResponse:
        reply = registry_pb2.ReportUsageResponse()
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            for r in records:
                rejected = await self._check_consumer(conn, peer, r)
                if rejected:
                    reply.rejected.append(registry_pb2.RejectedUsage(
                        transfer_id=r["transfer_id"], code=rejected[0], message=rejected[1]))
                    continue
                counts = (r["records"], r["bytes"], r["batches"])
                held = await (await conn.execute(
                    "SELECT agreement_id, consumer_node, records, bytes, batches "
                    "FROM usage_consumer_records WHERE transfer_id = ?", (r["transfer_id"],))
                              ).fetchone()
                if held is None:
                    provider = await (await conn.execute(
                        "SELECT provider FROM notarisations WHERE agreement_id = ? LIMIT 1",
                        (r["agreement_id"],))).fetchone()
                    parsed = parse_node_identity_uri(peer.uri)
                    await conn.execute(
                        "INSERT INTO usage_consumer_records(transfer_id, agreement_id, dataset_id, "
                        "provider_node, consumer_node, consumer_org, records, bytes, batches, "
                        "started_at, ended_at, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?)",
                        (r["transfer_id"], r["agreement_id"], r["dataset_id"], provider[0],
                         peer.uri, parsed[0] if parsed else peer.uri, *counts,
                         iso(from_iso(r["started_at"])), iso(from_iso(r["ended_at"])), now))
                    reply.accepted += 1
                elif (held["agreement_id"], held["consumer_node"]) != (r["agreement_id"], peer.uri):
                    reply.rejected.append(registry_pb2.RejectedUsage(
                        transfer_id=r["transfer_id"], code="transfer_id_conflict",
                        message=f"transfer {r['transfer_id']} is recorded for another agreement"))
                elif _grown(counts, (held["records"], held["bytes"], held["batches"])):
                    await conn.execute(
                        "UPDATE usage_consumer_records SET records = ?, bytes = ?, batches = ?, "
                        "ended_at = ?, reported_at = ? WHERE transfer_id = ?",
                        (*counts, iso(from_iso(r["ended_at"])), now, r["transfer_id"]))
                    reply.accepted += 1
                else:
                    reply.duplicates += 1
        return reply

    @staticmethod
    async def _check_consumer(conn, peer: PeerIdentity, r: dict[str, Any]
                              ) -> tuple[str, str] | None:
        if not r["transfer_id"] or len(r["transfer_id"]) > 64:
            return "invalid_counts", "transfer_id must be 1-64 characters"
        try:
            from_iso(r["ended_at"]), from_iso(r["started_at"])
        except ValueError:
            return "invalid_counts", "started_at and ended_at must be ISO 8601 times"
        row = await (await conn.execute(
            "SELECT dataset_id, consumer FROM notarisations WHERE agreement_id = ? LIMIT 1",
            (r["agreement_id"],))).fetchone()
        if row is None:
            return "unknown_agreement", f"agreement {r['agreement_id']} was never notarised"
        if row["consumer"] not in await peer_names(conn, peer):
            return "not_the_consumer", f"{peer.uri} is not the consumer of agreement {r['agreement_id']}"
        if row["dataset_id"] != r["dataset_id"]:
            return "dataset_mismatch", (f"agreement {r['agreement_id']} is for {row['dataset_id']}, "
                                        f"not {r['dataset_id']}")
        return None

    async def _consent_counts(self, peer: PeerIdentity, made: str, counts: list[dict[str, Any]],
                              reply: registry_pb2.ReportUsageResponse) -> None:
        if not counts:
            return
        parsed = parse_node_identity_uri(peer.uri)
        node_pid, node_name = parsed if parsed else (peer.uri, "")
        day = f"{from_iso(made).astimezone(JST):%Y-%m-%d}"
        async with self.db.transaction() as conn:
            for c in counts:
                row = await (await conn.execute(
                    "SELECT publisher_id, node_participant_id, node_name FROM datasets WHERE id = ?",
                    (c["dataset_id"],))).fetchone()
                if row is None:
                    reply.consent_counts_rejected.append(registry_pb2.RejectedUsage(
                        transfer_id=c["dataset_id"], code="unknown_dataset",
                        message=f"dataset {c['dataset_id']} is not in the catalog"))
                    continue
                if (row["node_participant_id"], row["node_name"]) != (node_pid, node_name):
                    reply.consent_counts_rejected.append(registry_pb2.RejectedUsage(
                        transfer_id=c["dataset_id"], code="not_your_dataset",
                        message=f"dataset {c['dataset_id']} is not served by {peer.uri}"))
                    continue
                await conn.execute(
                    "INSERT INTO consent_counts(node, dataset_id, day, publisher_id, residents, "
                    "consents, counted_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(node, dataset_id, day) DO UPDATE SET residents = "
                    "excluded.residents, consents = excluded.consents, counted_at = "
                    "excluded.counted_at, publisher_id = excluded.publisher_id "
                    "WHERE excluded.counted_at >= consent_counts.counted_at",
                    (peer.uri, c["dataset_id"], day, row["publisher_id"], c["residents"],
                     c["consents"], iso(from_iso(made).astimezone(UTC))))
                reply.consent_counts_accepted += 1


def _record(r: dict[str, Any]) -> registry_pb2.UsageRecord:
    try:
        started, ended = _ts(r["started_at"]), _ts(r["ended_at"])
    except ValueError:
        started, ended = Timestamp(), Timestamp()   # refused below as invalid_counts
    return registry_pb2.UsageRecord(
        transfer_id=r["transfer_id"], agreement_id=r["agreement_id"], dataset_id=r["dataset_id"],
        records=r["records"], bytes=r["bytes"], batches=r["batches"], started_at=started,
        ended_at=ended, incremental=r["incremental"])
