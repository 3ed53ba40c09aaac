"""LedgerCheckpointStore: signed flow-ledger checkpoints held for connectors, forks, and audits (5-2).

A connector signs ``{node, seq, head, time}`` of its flow ledger with its node key and submits it
(``SubmitLedgerCheckpoints``). The registry holds a checkpoint only when:

- it is the caller's own: the node it names is the identity of the client certificate of the
  call (``checkpoint_not_own`` otherwise), and
- its signature verifies against the mesh CA with a certificate naming that node and valid at the
  checkpoint's time (``mesh.ledger_checkpoints.verify_checkpoint``'s codes otherwise).

An honest ledger only grows, so the checkpoints of one node form one line: one head per seq, one
seq per head, and the connector hands them in oldest first. A checkpoint that contradicts what is
held is a **fork** — the ledger was rewritten (same seq, another head), cut back or restored from
an older copy (a seq lower than one already held, not matching a held checkpoint), or renumbered
(a held head at another seq). A fork is rejected with ``checkpoint_conflict``, logged as a
warning and kept (status ``fork``) for the operating organisation to look into; the checkpoints
held before it stay the reference. No clocks are compared: a connector's clock stepping back is
not a fork.

Idempotent: a checkpoint with the (seq, head) of one already held counts as a duplicate (a
retry, or the same head signed again later); the same fork handed in again is not stored twice.

``audit`` checks an NDJSON export of a connector's ledger (``areamesh connector ledger export``)
against the newest checkpoint held for that node (all accepted ones once a fork was recorded) with
``mesh.ledger_verify.verify_export``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from cryptography import x509

from mesh.certs import PeerIdentity
from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.db import Database
from mesh.errors import AreameshError, InvalidRequest, NotFound
from mesh.ids import parse_node_identity_uri
from mesh.ledger_checkpoints import SignedCheckpoint, verify_checkpoint
from mesh.ledger_verify import verify_export
from mesh.proto.areamesh.v1 import registry_pb2

log = logging.getLogger("areamesh.registry.audit")

MAX_CHECKPOINTS_PER_CALL = 100
MAX_CHECKPOINT_BYTES = 16 * 1024
MAX_SEQ = 2**62
CONFLICT = "checkpoint_conflict"


@dataclass(frozen=True)
class HeldCheckpoint:
    node: str
    seq: int
    head: str
    time: str
    received_at: str
    status: str               # accepted | fork
    conflict: str | None      # for a fork: what it contradicts
    signed: dict[str, Any]    # the signed checkpoint document as submitted

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "seq": self.seq, "head": self.head, "time": self.time,
                "received_at": self.received_at, "status": self.status,
                "conflict": self.conflict, "signed": self.signed}


def require_node_uri(value: str | None) -> str:
    """``value`` as a node identity URI (``urn:areamesh:org:<id>:node:<name>``) or InvalidRequest."""
    if not value or parse_node_identity_uri(value) is None:
        raise InvalidRequest("node must be a node identity URI such as "
                             "urn:areamesh:org:282014:node:main",
                             message_ja="node にはノードのURI（urn:areamesh:org:<ID>:node:<名前>）を"
                                        "指定してください", code="invalid_node")
    return value


class _Rejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class LedgerCheckpointStore:
    """The ``ledger_checkpoints`` table of ``registry.db`` (migration 6)."""

    def __init__(self, db: Database, roots: Sequence[x509.Certificate]) -> None:
        self.db = db
        self.roots = list(roots)

    # ---- submission ----------------------------------------------------------------------------
    async def submit(self, peer: PeerIdentity, docs: Sequence[bytes]
                     ) -> registry_pb2.SubmitLedgerCheckpointsResponse:
        """Hold the checkpoints in ``docs`` that ``peer`` may hand in (see the module docstring);
        one transaction, in request order."""
        if len(docs) > MAX_CHECKPOINTS_PER_CALL:
            raise InvalidRequest(f"at most {MAX_CHECKPOINTS_PER_CALL} checkpoints per call, got "
                                 f"{len(docs)}", code="too_many_checkpoints",
                                 message_ja=f"1回に送れるチェックポイントは{MAX_CHECKPOINTS_PER_CALL}件までです")
        reply = registry_pb2.SubmitLedgerCheckpointsResponse()
        checked: list[tuple[int, SignedCheckpoint]] = []
        for index, raw in enumerate(docs):
            try:
                checked.append((index, self._check(peer, raw)))
            except _Rejected as exc:
                self._reject(reply, peer, index, -1, exc.code, exc.message)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            for index, signed in checked:
                cp = signed.checkpoint
                conflict = await self._conflict(conn, signed)
                if conflict == "":
                    reply.duplicates += 1
                    continue
                await conn.execute(
                    "INSERT OR IGNORE INTO ledger_checkpoints(node, seq, head, time, signed_json, "
                    "received_at, status, conflict) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (cp.node, cp.seq, cp.head, cp.time, canonical_json(signed.to_json()).decode(),
                     now, "fork" if conflict else "accepted", conflict))
                if conflict:
                    self._reject(reply, peer, index, cp.seq, CONFLICT, conflict)
                else:
                    reply.accepted += 1
        if reply.accepted:
            log.info("ledger checkpoints held", extra={"peer": peer.uri, "accepted": reply.accepted,
                                                       "duplicates": reply.duplicates})
        return reply

    def _check(self, peer: PeerIdentity, raw: bytes) -> SignedCheckpoint:
        if len(raw) > MAX_CHECKPOINT_BYTES:
            raise _Rejected("malformed_checkpoint", f"the checkpoint is {len(raw)} bytes, more "
                            f"than {MAX_CHECKPOINT_BYTES}")
        try:
            signed = SignedCheckpoint.from_json(json.loads(raw))
        except (ValueError, RecursionError):
            raise _Rejected("malformed_checkpoint", "the checkpoint is not JSON") from None
        except AreameshError as exc:
            raise _Rejected(exc.code, exc.message) from None
        if signed.checkpoint.seq > MAX_SEQ:
            raise _Rejected("malformed_checkpoint", f"seq {signed.checkpoint.seq} is out of range")
        if signed.checkpoint.node != peer.uri:
            raise _Rejected("checkpoint_not_own", f"the checkpoint is of node "
                            f"{signed.checkpoint.node}; {peer.uri} can only hand in its own")
        try:
            verify_checkpoint(signed, self.roots)
        except AreameshError as exc:
            raise _Rejected(exc.code, exc.message) from None
        return signed

    @staticmethod
    def _reject(reply: registry_pb2.SubmitLedgerCheckpointsResponse, peer: PeerIdentity,
                index: int, seq: int, code: str, message: str) -> None:
        reply.rejected.append(registry_pb2.RejectedCheckpoint(index=index, seq=max(seq, 0),
                                                              code=code, message=message))
        if code == CONFLICT:
            log.warning("ledger checkpoint of %s at seq %d recorded as a fork: %s", peer.uri, seq,
                        message, extra={"peer": peer.uri, "code": code, "seq": seq})
        else:
            log.warning("ledger checkpoint from %s refused [%s]: %s", peer.uri, code, message,
                        extra={"peer": peer.uri, "code": code, "seq": seq, "index": index})

    @staticmethod
    async def _conflict(conn: aiosqlite.Connection, signed: SignedCheckpoint) -> str | None:
        """None: new and consistent; "": already held (a duplicate); else why it is a fork."""
        cp = signed.checkpoint

        async def one(sql: str, *args: object) -> aiosqlite.Row | None:
            async with conn.execute(sql, args) as cur:
                return await cur.fetchone()

        held = await one("SELECT head, time FROM ledger_checkpoints WHERE node = ? AND seq = ? "
                         "AND status = 'accepted'", cp.node, cp.seq)
        if held is not None:
            if held[0] == cp.head:
                return ""
            return (f"a checkpoint of {held[1]} already holds head {held[0]} at seq {cp.seq}; this "
                    f"one has {cp.head}: the ledger was rewritten")
        elsewhere = await one("SELECT seq, time FROM ledger_checkpoints WHERE node = ? AND head = ? "
                              "AND status = 'accepted' LIMIT 1", cp.node, cp.head)
        if elsewhere is not None:
            return (f"head {cp.head} is held at seq {elsewhere[0]} (checkpoint of {elsewhere[1]}); "
                    f"this one puts it at seq {cp.seq}: the ledger was renumbered")
        top = await one("SELECT seq, time FROM ledger_checkpoints WHERE node = ? AND "
                        "status = 'accepted' ORDER BY seq DESC LIMIT 1", cp.node)
        if top is not None and top[0] > cp.seq:
            return (f"seq {cp.seq} is behind the checkpoint of {top[1]} at seq {top[0]} and matches "
                    "no checkpoint held: the ledger was cut back or replaced by an older copy")
        return None

    # ---- reading -------------------------------------------------------------------------------
    async def held(self, node: str, *, limit: int = 100) -> list[HeldCheckpoint]:
        """``node``'s checkpoints, forks included, the most recently received first."""
        rows = await self.db.fetchall(
            "SELECT node, seq, head, time, received_at, status, conflict, signed_json FROM "
            "ledger_checkpoints WHERE node = ? ORDER BY id DESC LIMIT ?", (node, limit))
        return [HeldCheckpoint(*r[:7], json.loads(r[7])) for r in rows]

    async def forks(self, node: str) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) FROM ledger_checkpoints WHERE node = ? AND "
                                     "status = 'fork'", (node,))
        return row[0] if row else 0

    async def newest(self, node: str) -> HeldCheckpoint | None:
        """The accepted checkpoint with the highest seq (what an audit compares with)."""
        row = await self.db.fetchone(
            "SELECT node, seq, head, time, received_at, status, conflict, signed_json FROM "
            "ledger_checkpoints WHERE node = ? AND status = 'accepted' ORDER BY seq DESC LIMIT 1",
            (node,))
        return HeldCheckpoint(*row[:7], json.loads(row[7])) if row else None

    async def reference(self, node: str) -> HeldCheckpoint:
        """``newest``, or ``NotFound`` (``no_checkpoint``) when none is held."""
        held = await self.newest(node)
        if held is None:
            raise NotFound(f"the registry holds no ledger checkpoint of {node}",
                           message_ja=f"{node} の台帳チェックポイントはレジストリにありません",
                           code="no_checkpoint", details={"node": node})
        return held

    # ---- audit ---------------------------------------------------------------------------------
    async def audit(self, node: str, export: Path, *, label: str = "the uploaded export"
                    ) -> dict[str, Any]:
        """Check the NDJSON ledger export at ``export`` against the checkpoints held for ``node``.

        Without forks the accepted checkpoints of a node lie on one chain, and the newest one pins
        all before it (each entry's hash covers its predecessor's): the export is compared with
        that one. Once a fork was recorded the accepted ones may come from two chains (a ledger
        cut back, then grown past the old head), so the export is compared with all of them.

        ``NotFound`` (``no_checkpoint``) when none is held; ``InvalidRequest``
        (``ledger_export_malformed``) when the file is not an export; tampering is a report with
        ``ok`` false."""
        held = await self.reference(node)
        forks = await self.forks(node)
        if forks:
            rows = await self.db.fetchall("SELECT signed_json FROM ledger_checkpoints WHERE "
                                          "node = ? AND status = 'accepted' ORDER BY seq", (node,))
            pins = [SignedCheckpoint.from_json(json.loads(r[0])) for r in rows]
        else:
            pins = [SignedCheckpoint.from_json(held.signed)]
        report = await verify_export(export, pins, roots=self.roots, label=label)
        body = report.to_json()
        if report.ok:
            body["message"] = (f"the export is an intact chain of {report.entries} entries and "
                               f"matches the checkpoint of {held.time} at seq {held.seq}")
            body["message_ja"] = (f"台帳の写し（{report.entries} 件）は改ざんされておらず、"
                                  f"{held.time} のチェックポイント（{held.seq} 件目）と一致します")
        body.update(node=node, forks=forks,
                    checkpoint={k: v for k, v in held.to_json().items() if k != "signed"})
        log.info("ledger export audited", extra={"node": node, "ok": report.ok,
                                                 "reason": report.reason,
                                                 "entries": report.entries, "forks": forks})
        return body
