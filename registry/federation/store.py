"""FederationStore: the federation documents of other meshes this registry's operator added
(``federations`` in registry.db), and what the link to each last found.

A federation is **pending** when added here and **active** once the other registry has answered
our mTLS ``FederationService.Exchange`` call, which it does only when its operator has added our
document too (registry/federation/link.py). Only active federations reach connectors.

A removed federation stays as a **removed** row (a tombstone): its CA is still accepted by the
registry's TLS, only so that the other registry's next ``Exchange`` gets a clear
``federation_not_added`` refusal (and turns its side pending at once) instead of a failed
handshake it could not tell from a network outage. Nothing else of it is trusted: it is in no
trust bundle, and the interceptor refuses its nodes. Adding the mesh again replaces the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from mesh.certs import fingerprint
from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import Conflict, InvalidRequest, NotFound
from mesh.federation import FederationDocument


@dataclass(frozen=True)
class Federation:
    mesh_id: str
    name: str
    document: FederationDocument
    fingerprints: list[str]
    registry_endpoint: str
    added_at: str
    added_by: str
    status: str              # pending | active | removed
    checked_at: str | None
    last_error: str | None
    crl_der: bytes | None
    crl_number: int
    crl_next_update: str | None

    @property
    def active(self) -> bool:
        return self.status == "active"

    def to_json(self) -> dict:
        return {"mesh_id": self.mesh_id, "name": self.name, "status": self.status,
                "fingerprints": self.fingerprints, "registry_endpoint": self.registry_endpoint,
                "added_at": self.added_at, "added_by": self.added_by,
                "checked_at": self.checked_at, "last_error": self.last_error,
                "revocation_list_number": self.crl_number if self.crl_der else None,
                "revocation_list_next_update": self.crl_next_update}


def _row(r) -> Federation:
    return Federation(
        mesh_id=r["mesh_id"], name=r["name"],
        document=FederationDocument.parse(r["document"].encode()),
        fingerprints=json.loads(r["fingerprints"]), registry_endpoint=r["registry_endpoint"],
        added_at=r["added_at"], added_by=r["added_by"], status=r["status"],
        checked_at=r["checked_at"], last_error=r["last_error"], crl_der=r["crl_der"],
        crl_number=r["crl_number"], crl_next_update=r["crl_next_update"])


class FederationStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self, *, removed: bool = False) -> list[Federation]:
        """The federations added (``removed``: also the tombstones of removed ones)."""
        return [_row(r) for r in await self.db.fetchall(
            "SELECT * FROM federations" + ("" if removed else " WHERE status != 'removed'")
            + " ORDER BY mesh_id")]

    async def get(self, mesh_id: str, *, removed: bool = False) -> Federation:
        r = await self.db.fetchone("SELECT * FROM federations WHERE mesh_id = ?", (mesh_id,))
        if r is None or (r["status"] == "removed" and not removed):
            raise NotFound(f"no federation with mesh {mesh_id!r} was added here",
                           message_ja=f"メッシュ {mesh_id} との連携は登録されていません",
                           code="federation_unknown")
        return _row(r)

    async def add(self, doc: FederationDocument, *, own_mesh: str, own_ca: x509.Certificate,
                  by: str) -> Federation:
        """Store a verified document. Refused: our own mesh id, a mesh id already added, a CA
        that is ours or already belongs to another federation (by fingerprint, by key, or by
        subject name: peers are told apart by the root that signed them, and an issuer name two
        roots share would make that ambiguous in TLS stacks)."""
        if doc.mesh_id == own_mesh:
            raise InvalidRequest(
                f"mesh id {doc.mesh_id!r} is this mesh's own id; a mesh cannot federate with "
                "itself (or the other mesh chose the same id: mesh ids must differ)",
                message_ja=f"メッシュID {doc.mesh_id} はこのメッシュ自身のIDです",
                code="federation_mesh_id_own")
        taken: dict[str, tuple[str, x509.Certificate]] = {
            fingerprint(own_ca): (own_mesh + " (this mesh)", own_ca)}
        for f in await self.list():
            if f.mesh_id == doc.mesh_id:
                raise Conflict(
                    f"mesh {doc.mesh_id!r} is already federated (added {f.added_at}); remove it "
                    "first to replace its document",
                    message_ja=f"メッシュ {doc.mesh_id} は既に登録されています。置き換える場合は"
                               "先に削除してください", code="federation_duplicate")
            for cert in f.document.certificates:
                taken[fingerprint(cert)] = (f.mesh_id, cert)
        for cert in doc.certificates:
            for fp, (holder, other) in taken.items():
                if fp == fingerprint(cert) or other.public_key() == cert.public_key() \
                        or other.subject == cert.subject:
                    raise Conflict(
                        f"CA {fingerprint(cert)} of mesh {doc.mesh_id!r} is (or shares its key or "
                        f"name with) a CA of mesh {holder}; one CA may belong to one mesh only",
                        message_ja=f"メッシュ {doc.mesh_id} の認証局は、既にメッシュ {holder} の"
                                   "認証局として登録されています", code="federation_ca_conflict")
        async with self.db.transaction() as conn:
            await conn.execute("DELETE FROM federations WHERE mesh_id = ? AND status = 'removed'",
                               (doc.mesh_id,))
            await conn.execute(
                "INSERT INTO federations(mesh_id, name, document, fingerprints, registry_endpoint,"
                " added_at, added_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (doc.mesh_id, doc.name, json.dumps(doc.to_json(), ensure_ascii=False),
                 json.dumps(doc.fingerprints), doc.registry_endpoint, iso(utcnow()), by))
        return await self.get(doc.mesh_id)

    async def remove(self, mesh_id: str) -> Federation:
        f = await self.get(mesh_id)
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE federations SET status = 'removed', removed_at = ?, crl_der = NULL "
                "WHERE mesh_id = ?", (iso(utcnow()), mesh_id))
        return f

    async def record_exchange(self, mesh_id: str, *, crl_der: bytes, crl_number: int,
                              next_update: datetime) -> None:
        """The other registry answered: the federation is active, with its current list."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE federations SET status = 'active', checked_at = ?, last_error = NULL, "
                "crl_der = ?, crl_number = ?, crl_next_update = ? WHERE mesh_id = ? "
                "AND crl_number <= ? AND status != 'removed'",
                (iso(utcnow()), crl_der, crl_number, iso(next_update), mesh_id, crl_number))

    async def record_failure(self, mesh_id: str, error: str, *, refused: bool) -> None:
        """The other registry refused us (``refused``: it has not added us, or removed us; the
        federation falls back to pending) or could not be reached (the state stays, so a short
        outage does not cut traffic; its revocation list still ages out at the connectors)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE federations SET checked_at = ?, last_error = ?"
                + (", status = 'pending'" if refused else "")
                + " WHERE mesh_id = ? AND status != 'removed'",
                (iso(utcnow()), error[:500], mesh_id))
