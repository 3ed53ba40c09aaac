"""RegistryStore: participants, join tokens, nodes, issued certificates and revocation lists
in ``registry.db``. The CLI (offline admin) and the server use it alike; SQLite WAL lets both
run at once, and ``BEGIN IMMEDIATE`` serialises writers across processes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mesh.clock import from_iso, iso, utcnow
from mesh.db import Database
from mesh.errors import Conflict, FailedPrecondition, InvalidRequest, NotFound, PermissionDenied
from mesh.ids import ParticipantType, validate_node_name, validate_participant_id
from mesh.jointoken import JoinToken, secret_matches
from registry.ca.authority import CertificateAuthority, RevokedEntry

log = logging.getLogger("areamesh.registry.store")


@dataclass(frozen=True)
class Participant:
    id: str
    name: str
    type: str
    status: str
    reading: str | None = None     # katakana, from the list of 全国地方公共団体コード


@dataclass(frozen=True)
class NodeRow:
    participant_id: str
    participant_name: str
    participant_type: str
    name: str
    status: str
    endpoint: str | None
    last_seen: datetime | None
    cert_serial: str | None
    software_version: str | None = None
    cert_not_after: datetime | None = None    # of its newest certificate not revoked

    def online(self, heartbeat: timedelta, now: datetime | None = None) -> bool:
        """Seen within three heartbeat intervals (``--heartbeat-interval``)."""
        return bool(self.last_seen and self.last_seen >= (now or utcnow()) - 3 * heartbeat)


@dataclass(frozen=True)
class TokenRow:
    id: str
    participant_id: str
    created_at: str
    expires_at: str
    used_at: str | None
    used_by_node: str | None
    revoked_at: str | None
    revoked_by: str | None
    state: str                 # unused | used | expired | revoked

    def to_json(self) -> dict[str, str | None]:
        return {"id": self.id, "participant": self.participant_id, "state": self.state,
                "created_at": self.created_at, "expires_at": self.expires_at,
                "used_at": self.used_at, "used_by_node": self.used_by_node,
                "revoked_at": self.revoked_at, "revoked_by": self.revoked_by}


@dataclass(frozen=True)
class StoredCrl:
    number: int
    crl_der: bytes
    this_update: datetime
    next_update: datetime


def open_registry_db(data_dir: Path, database: str | None = None) -> Database:
    """The registry's database: ``registry.db`` in ``data_dir`` or PostgreSQL (see
    registry/database.py for how it is chosen)."""
    from registry.database import open_registry_db as open_db

    return open_db(data_dir, database)  # type: ignore[return-value]


class RegistryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- meta ------------------------------------------------------------------------------
    async def set_meta(self, key: str, value: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) "
                               "DO UPDATE SET value = excluded.value", (key, value))

    async def meta(self, key: str) -> str | None:
        row = await self.db.fetchone("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else None

    # ---- participants ----------------------------------------------------------------------
    async def add_participant(self, pid: str, name: str, kind: str) -> Participant:
        validate_participant_id(pid, kind)
        name = name.strip()
        if not name or len(name) > 200:
            raise InvalidRequest("participant name must be 1-200 characters",
                                 message_ja="参加者名は1〜200文字で指定してください")
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            if await (await conn.execute("SELECT 1 FROM participants WHERE id = ?", (pid,))
                      ).fetchone():
                raise Conflict(f"participant {pid} already exists",
                               message_ja=f"参加者 {pid} は登録済みです")
            await conn.execute(
                "INSERT INTO participants(id, name, type, status, created_at, updated_at) "
                "VALUES (?, ?, ?, 'pending', ?, ?)", (pid, name, ParticipantType(kind).value, now, now))
        log.info("participant added", extra={"participant": pid, "type": kind})
        return Participant(pid, name, kind, "pending")

    async def participant(self, pid: str) -> Participant:
        row = await self.db.fetchone("SELECT * FROM participants WHERE id = ?", (pid,))
        if row is None:
            raise NotFound(f"unknown participant {pid}", message_ja=f"参加者 {pid} は登録されていません")
        return Participant(row["id"], row["name"], row["type"], row["status"], row["reading"])

    async def participants(self) -> list[Participant]:
        rows = await self.db.fetchall("SELECT * FROM participants ORDER BY id")
        return [Participant(r["id"], r["name"], r["type"], r["status"], r["reading"])
                for r in rows]

    async def suspend_participant(self, pid: str, reason: str) -> list[str]:
        """Suspend a participant and revoke every live certificate of its nodes."""
        await self.participant(pid)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE participants SET status = 'suspended', updated_at = ? "
                               "WHERE id = ?", (now, pid))
            serials = [r[0] for r in await (await conn.execute(
                "SELECT serial FROM certificates WHERE participant_id = ? AND revoked_at IS NULL "
                "AND not_after > ?", (pid, now))).fetchall()]
            await conn.execute(
                "UPDATE certificates SET revoked_at = ?, revocation_reason = ? "
                "WHERE participant_id = ? AND revoked_at IS NULL", (now, reason, pid))
        log.warning("participant suspended", extra={"participant": pid, "revoked": len(serials)})
        return serials

    async def reinstate_participant(self, pid: str) -> None:
        """Lift a suspension: back to certified if it had been certified, else pending."""
        await self.participant(pid)
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE participants SET status = CASE WHEN certified_at IS NULL THEN 'pending' "
                "ELSE 'certified' END, updated_at = ? WHERE id = ?", (iso(utcnow()), pid))

    async def certify_participant(self, pid: str) -> Participant:
        """Record that the operator certified the participant against its criteria (5-1)."""
        participant = await self.participant(pid)
        if participant.status == "suspended":
            raise FailedPrecondition(f"participant {pid} is suspended; reinstate it first",
                                     message_ja=f"参加者 {pid} は停止中です。先に停止を解除してください")
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE participants SET status = 'certified', certified_at = ?, "
                               "updated_at = ? WHERE id = ?", (now, now, pid))
        log.info("participant certified", extra={"participant": pid})
        return Participant(participant.id, participant.name, participant.type, "certified")

    # ---- shared use (共同利用): hosting delegations ----------------------------------------
    async def add_hosting(self, tenant: str, host: str) -> None:
        """Let ``host``'s connector publish for ``tenant`` (a participant without a node)."""
        if tenant == host:
            raise InvalidRequest("a participant cannot host itself",
                                 message_ja="自分自身を共同利用先にはできません")
        await self.participant(tenant)
        await self.participant(host)
        async with self.db.transaction() as conn:
            row = await (await conn.execute("SELECT host_id FROM hosting WHERE tenant_id = ?",
                                            (tenant,))).fetchone()
            if row is not None and row[0] != host:
                raise Conflict(f"{tenant} is already hosted by {row[0]}; remove that first",
                               message_ja=f"{tenant} は既に {row[0]} が共同利用で受け入れています")
            await conn.execute("INSERT OR IGNORE INTO hosting(tenant_id, host_id, created_at) "
                               "VALUES (?, ?, ?)", (tenant, host, iso(utcnow())))
        log.info("hosting delegation added", extra={"tenant": tenant, "host": host})

    async def remove_hosting(self, tenant: str, host: str) -> None:
        async with self.db.transaction() as conn:
            cur = await conn.execute("DELETE FROM hosting WHERE tenant_id = ? AND host_id = ?",
                                     (tenant, host))
            if cur.rowcount != 1:
                raise NotFound(f"{host} does not host {tenant}",
                               message_ja=f"{host} は {tenant} を受け入れていません")

    async def host_of(self, tenant: str) -> str | None:
        row = await self.db.fetchone("SELECT host_id FROM hosting WHERE tenant_id = ?", (tenant,))
        return row[0] if row else None

    async def hosts(self) -> dict[str, str]:
        """Every hosting delegation: tenant → host."""
        return {r[0]: r[1] for r in await self.db.fetchall("SELECT tenant_id, host_id FROM hosting")}

    async def tenants_of(self, host: str) -> list[str]:
        rows = await self.db.fetchall("SELECT tenant_id FROM hosting WHERE host_id = ? "
                                      "ORDER BY tenant_id", (host,))
        return [r[0] for r in rows]

    # ---- join tokens -----------------------------------------------------------------------
    async def create_token(self, pid: str, ttl: timedelta, ca_fingerprint: str) -> JoinToken:
        participant = await self.participant(pid)
        if participant.status == "suspended":
            raise FailedPrecondition(f"participant {pid} is {participant.status}",
                                     message_ja=f"参加者 {pid} は停止中です")
        if ttl <= timedelta(0) or ttl > timedelta(days=30):
            raise InvalidRequest("token TTL must be more than 0 and at most 30d",
                                 message_ja="トークンの有効期間は30日以内で指定してください")
        token = JoinToken.new(ca_fingerprint)
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO join_tokens(id, secret_sha256, participant_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (token.token_id, token.secret_sha256, pid, iso(now), iso(now + ttl)))
        log.info("join token created", extra={"participant": pid, "token_id": token.token_id})
        return token

    async def tokens(self, participant: str | None = None) -> list[TokenRow]:
        """Join tokens, newest first, with their state now (never their secrets)."""
        sql, params = "SELECT * FROM join_tokens", ()
        if participant:
            sql, params = sql + " WHERE participant_id = ?", (participant,)
        rows = await self.db.fetchall(sql + " ORDER BY created_at DESC, id", params)
        now = utcnow()
        return [TokenRow(r["id"], r["participant_id"], r["created_at"], r["expires_at"],
                         r["used_at"], r["used_by_node"], r["revoked_at"], r["revoked_by"],
                         "revoked" if r["revoked_at"] else "used" if r["used_at"] else
                         "expired" if from_iso(r["expires_at"]) <= now else "unused")
                for r in rows]

    async def revoke_token(self, token_id: str, by: str) -> None:
        """Revoke an unused join token: enrolment with it is refused from now on."""
        async with self.db.transaction() as conn:
            row = await (await conn.execute("SELECT used_at, revoked_at FROM join_tokens "
                                            "WHERE id = ?", (token_id,))).fetchone()
            if row is None:
                raise NotFound(f"unknown join token {token_id}", code="token_unknown",
                               message_ja=f"参加トークン {token_id} は存在しません")
            if row["revoked_at"] or row["used_at"]:
                raise FailedPrecondition(
                    f"join token {token_id} was already "
                    + (f"revoked at {row['revoked_at']}" if row["revoked_at"] else
                       f"used at {row['used_at']} (revoke the node instead)"),
                    message_ja="この参加トークンは使用済みか失効済みです", code="token_not_revocable")
            await conn.execute("UPDATE join_tokens SET revoked_at = ?, revoked_by = ? "
                               "WHERE id = ?", (iso(utcnow()), by, token_id))
        log.warning("join token revoked", extra={"token_id": token_id, "by": by})

    async def check_token(self, token_id: str, secret: str) -> Participant:
        """The participant a token enrols, or a clear refusal. Does not consume the token."""
        row = await self.db.fetchone("SELECT * FROM join_tokens WHERE id = ?", (token_id,))
        if row is None or not secret_matches(secret, row["secret_sha256"]):
            raise PermissionDenied("join token is unknown (check that it was copied whole and "
                                   "created by this registry)",
                                   message_ja="参加トークンが不明です", code="token_unknown")
        if row["revoked_at"] is not None:
            raise PermissionDenied(f"join token {token_id} was revoked at {row['revoked_at']}; "
                                   "ask the operating organisation for a new one",
                                   message_ja="この参加トークンは失効しています", code="token_revoked")
        if row["used_at"] is not None:
            raise PermissionDenied(f"join token {token_id} was already used at {row['used_at']} "
                                   f"by node {row['used_by_node']}; create a new one",
                                   message_ja="この参加トークンは使用済みです", code="token_used")
        if from_iso(row["expires_at"]) <= utcnow():
            raise PermissionDenied(f"join token {token_id} expired at {row['expires_at']}; "
                                   "create a new one",
                                   message_ja="参加トークンの有効期限が切れています",
                                   code="token_expired")
        participant = await self.participant(row["participant_id"])
        if participant.status == "suspended":
            raise PermissionDenied(f"participant {participant.id} is {participant.status}",
                                   message_ja="参加者が停止中です", code="participant_suspended")
        return participant

    # ---- nodes and certificates ------------------------------------------------------------
    async def enrol(self, token_id: str, participant_id: str, node_name: str,
                    cert: x509.Certificate) -> None:
        """Consume the token and record the node and its first certificate, atomically.

        A concurrent use of the same token loses with ``PermissionDenied``; older certificates
        of a re-enrolled node are revoked as superseded.
        """
        validate_node_name(node_name)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE join_tokens SET used_at = ?, used_by_node = ? "
                "WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL",
                (now, node_name, token_id))
            if cur.rowcount != 1:
                raise PermissionDenied(f"join token {token_id} was already used or revoked",
                                       message_ja="この参加トークンは使用済みか失効しています",
                                       code="token_used")
            await conn.execute(
                "UPDATE certificates SET revoked_at = ?, revocation_reason = 'superseded' "
                "WHERE participant_id = ? AND node_name = ? AND revoked_at IS NULL",
                (now, participant_id, node_name))
            await conn.execute(
                "INSERT INTO nodes(participant_id, name, status, created_at) "
                "VALUES (?, ?, 'active', ?) ON CONFLICT(participant_id, name) "
                "DO UPDATE SET status = 'active'", (participant_id, node_name, now))
            await self._record_cert(conn, participant_id, node_name, cert)

    async def record_renewal(self, participant_id: str, node_name: str,
                             cert: x509.Certificate) -> None:
        async with self.db.transaction() as conn:
            await self._record_cert(conn, participant_id, node_name, cert)

    @staticmethod
    async def _record_cert(conn, participant_id: str, node_name: str,
                           cert: x509.Certificate) -> None:
        await conn.execute(
            "INSERT INTO certificates(serial, participant_id, node_name, not_before, not_after, "
            "issued_at) VALUES (?, ?, ?, ?, ?, ?)",
            (format(cert.serial_number, "x"), participant_id, node_name,
             iso(cert.not_valid_before_utc), iso(cert.not_valid_after_utc), iso(utcnow())))

    async def node_status(self, participant_id: str, node_name: str) -> str | None:
        row = await self.db.fetchone(
            "SELECT status FROM nodes WHERE participant_id = ? AND name = ?",
            (participant_id, node_name))
        return row["status"] if row else None

    async def revoke_node(self, participant_id: str, node_name: str, reason: str) -> list[str]:
        if await self.node_status(participant_id, node_name) is None:
            raise NotFound(f"unknown node {node_name} of participant {participant_id}",
                           message_ja=f"ノード {participant_id}/{node_name} は登録されていません")
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            serials = [r[0] for r in await (await conn.execute(
                "SELECT serial FROM certificates WHERE participant_id = ? AND node_name = ? "
                "AND revoked_at IS NULL", (participant_id, node_name))).fetchall()]
            await conn.execute(
                "UPDATE certificates SET revoked_at = ?, revocation_reason = ? "
                "WHERE participant_id = ? AND node_name = ? AND revoked_at IS NULL",
                (now, reason, participant_id, node_name))
            await conn.execute("UPDATE nodes SET status = 'revoked' WHERE participant_id = ? "
                               "AND name = ?", (participant_id, node_name))
        log.warning("node revoked", extra={"participant": participant_id, "node": node_name,
                                           "certificates": len(serials)})
        return serials

    async def certificate_state(self, serial_hex: str) -> tuple[str | None, str] | None:
        """(revoked_at, participant status) of a certificate this registry issued."""
        row = await self.db.fetchone(
            "SELECT c.revoked_at, p.status FROM certificates c JOIN participants p "
            "ON p.id = c.participant_id WHERE c.serial = ?", (serial_hex,))
        return (row[0], row[1]) if row else None

    async def heartbeat(self, participant_id: str, node_name: str, endpoint: str,
                        serial_hex: str, version: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE nodes SET endpoint = ?, last_seen = ?, cert_serial = ?, "
                "software_version = ? WHERE participant_id = ? AND name = ?",
                (endpoint, iso(utcnow()), serial_hex, version, participant_id, node_name))

    async def nodes(self, participant_id: str | None = None, *, include_revoked: bool = False
                    ) -> list[NodeRow]:
        """Active nodes of participants not suspended; ``include_revoked``: every node (status
        ``revoked``, or ``suspended`` while its participant is)."""
        sql = ("SELECT n.*, p.name AS pname, p.type AS ptype, p.status AS pstatus, "
               "(SELECT MAX(c.not_after) FROM certificates c WHERE c.participant_id = "
               "n.participant_id AND c.node_name = n.name AND c.revoked_at IS NULL) AS not_after "
               "FROM nodes n JOIN participants p ON p.id = n.participant_id WHERE ")
        sql += "1 = 1" if include_revoked else "n.status = 'active' AND p.status <> 'suspended'"
        params: tuple = ()
        if participant_id:
            sql += " AND n.participant_id = ?"
            params = (participant_id,)
        rows = await self.db.fetchall(sql + " ORDER BY n.participant_id, n.name", params)
        return [NodeRow(r["participant_id"], r["pname"], r["ptype"], r["name"],
                        "suspended" if r["status"] == "active" and r["pstatus"] == "suspended"
                        else r["status"],
                        r["endpoint"], from_iso(r["last_seen"]) if r["last_seen"] else None,
                        r["cert_serial"], r["software_version"],
                        from_iso(r["not_after"]) if r["not_after"] else None) for r in rows]

    # ---- notarised agreements --------------------------------------------------------------
    async def notarise(self, digest: str, agreement_id: str, dataset_id: str, provider: str,
                       consumer: str, by: str) -> datetime:
        """Record an agreement digest once; return when it was first notarised."""
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT OR IGNORE INTO notarisations(digest, agreement_id, dataset_id, provider, "
                "consumer, notarised_by, notarised_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (digest, agreement_id, dataset_id, provider, consumer, by, iso(now)))
            row = await (await conn.execute("SELECT notarised_at FROM notarisations "
                                            "WHERE digest = ?", (digest,))).fetchone()
        return from_iso(row[0])

    async def notarisation(self, digest: str) -> dict | None:
        row = await self.db.fetchone("SELECT * FROM notarisations WHERE digest = ?", (digest,))
        return dict(row) if row else None

    # ---- revocation lists ------------------------------------------------------------------
    async def current_crl(self, ca: CertificateAuthority, validity: timedelta) -> StoredCrl:
        """The newest signed list, re-signed when the revoked set changed or half its validity
        has passed. Expired certificates drop off the list."""
        now = utcnow()
        async with self.db.transaction() as conn:
            rows = await (await conn.execute(
                "SELECT serial, revoked_at FROM certificates WHERE revoked_at IS NOT NULL "
                "AND not_after > ? ORDER BY serial", (iso(now),))).fetchall()
            serials = ",".join(r[0] for r in rows)
            latest = await (await conn.execute(
                "SELECT * FROM revocation_lists ORDER BY number DESC LIMIT 1")).fetchone()
            if latest is not None and latest["revoked_serials"] == serials and \
                    from_iso(latest["next_update"]) - now > validity / 2:
                return StoredCrl(latest["number"], latest["crl_der"],
                                 from_iso(latest["this_update"]), from_iso(latest["next_update"]))
            number = (latest["number"] + 1) if latest is not None else 1
            crl = ca.sign_crl([RevokedEntry(int(r[0], 16), from_iso(r[1])) for r in rows],
                              number=number, this_update=now, next_update=now + validity)
            der = crl.public_bytes(serialization.Encoding.DER)
            await conn.execute(
                "INSERT INTO revocation_lists(number, crl_der, this_update, next_update, "
                "revoked_serials) VALUES (?, ?, ?, ?, ?)",
                (number, der, iso(now), iso(now + validity), serials))
            await conn.execute("DELETE FROM revocation_lists WHERE number < ?", (number - 10,))
        log.info("revocation list %d signed with %d entries", number, len(rows))
        return StoredCrl(number, der, now, now + validity)
