"""AdminAuditLog: the append-only record of admin actions (who, what, when, from where, outcome).

Append-only twice over: triggers in registry.db refuse UPDATE and DELETE of ``admin_audit``,
and each entry's ``hash`` covers the previous entry's hash and its own fields (canonical JSON),
so an edit made around the triggers (a copied and rewritten file) breaks the chain at the first
changed entry, which ``verify`` names. Every entry is also written to the registry's log
(``areamesh.registry.audit_log``) with its seq and hash: shipped off the machine, that copy is
the anchor a complete rewrite of the file cannot reach.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from mesh.clock import iso, utcnow
from mesh.datasets import canonical_json
from mesh.db import Database

log = logging.getLogger("areamesh.registry.audit_log")
GENESIS = "sha256:" + "0" * 64
FIELDS = ("seq", "at", "actor", "role", "source", "action", "target", "details", "outcome")


@dataclass(frozen=True)
class Actor:
    """Who acts: an operator over HTTP, or someone with a shell on the registry (role 'shell')."""

    name: str
    role: str            # admin | auditor | shell
    source: str          # "http 10.0.0.5" or "cli user@host"

    @property
    def may_change(self) -> bool:
        return self.role in ("admin", "shell")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    role: str
    source: str
    action: str
    target: str
    details: dict[str, Any]
    outcome: str          # "ok" or the refusal's error code
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in (*FIELDS, "prev", "hash")}


def entry_hash(prev: str, fields: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(prev.encode() + canonical_json(fields)).hexdigest()


def _entry(r) -> AuditEntry:
    return AuditEntry(r["seq"], r["at"], r["actor"], r["role"], r["source"], r["action"],
                      r["target"], json.loads(r["details"]), r["outcome"], r["prev"], r["hash"])


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "first_bad_seq": self.first_bad_seq,
                "reason": self.reason}


class AdminAuditLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(self, actor: Actor, action: str, target: str, details: dict[str, Any],
                     outcome: str) -> AuditEntry:
        async with self.db.transaction() as conn:
            last = await (await conn.execute(
                "SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1")).fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            fields = {"seq": seq, "at": iso(utcnow()), "actor": actor.name, "role": actor.role,
                      "source": actor.source, "action": action, "target": target,
                      "details": details, "outcome": outcome}
            digest = entry_hash(prev, fields)
            await conn.execute(
                "INSERT INTO admin_audit(seq, at, actor, role, source, action, target, details, "
                "outcome, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, fields["at"], actor.name, actor.role, actor.source, action, target,
                 json.dumps(details, ensure_ascii=False, sort_keys=True), outcome, prev, digest))
        log.info("admin action %s on %s by %s: %s", action, target, actor.name, outcome,
                 extra={"audit_seq": seq, "audit_hash": digest, "actor": actor.name,
                        "role": actor.role, "source": actor.source})
        return AuditEntry(seq, fields["at"], actor.name, actor.role, actor.source, action, target,
                          details, outcome, prev, digest)

    async def entries(self, *, limit: int = 100, before: int | None = None) -> list[AuditEntry]:
        """Newest first; ``before``: only entries with a smaller seq (paging)."""
        sql, params = "SELECT * FROM admin_audit", []
        if before is not None:
            sql += " WHERE seq < ?"
            params.append(before)
        rows = await self.db.fetchall(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit])
        return [_entry(r) for r in rows]

    async def verify(self) -> ChainCheck:
        """Walk the whole chain: numbering, links and hashes."""
        prev, count = GENESIS, 0
        async with self.db.conn.execute("SELECT * FROM admin_audit ORDER BY seq") as cur:
            async for r in cur:
                count += 1
                if r["seq"] != count:
                    return ChainCheck(False, count - 1, count, "deleted")
                entry = _entry(r)
                fields = {k: getattr(entry, k) for k in FIELDS}
                if entry.prev != prev:
                    return ChainCheck(False, count - 1, entry.seq, "relinked")
                if entry_hash(prev, fields) != entry.hash:
                    return ChainCheck(False, count - 1, entry.seq, "modified")
                prev = entry.hash
        return ChainCheck(True, count)
