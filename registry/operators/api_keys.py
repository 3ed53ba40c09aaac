"""ApiKeys: bearer keys the registry issues to its operators and to participants.

Printed form ``amop_<id>_<secret>`` (an operator's) or ``ampt_<id>_<secret>`` (a participant's).
The id names the key in lists, the audit log and revocation; the 256-bit secret is shown once
and only its SHA-256 is stored (a key is random, so a fast hash is enough: nothing to guess).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import FailedPrecondition, InvalidRequest, NotFound, Unauthenticated
from mesh.jointoken import new_secret_id, secret_matches, secret_sha256

OPERATOR_KEY = "operator"
PARTICIPANT_KEY = "participant"
PREFIX = {OPERATOR_KEY: "amop", PARTICIPANT_KEY: "ampt"}
KIND_OF_PREFIX = {v: k for k, v in PREFIX.items()}
_FORM = re.compile(r"^(amop|ampt)_([a-z2-7]{10})_([A-Za-z0-9_-]{43})$")
MAX_LABEL = 200


@dataclass(frozen=True)
class ApiKey:
    id: str
    kind: str
    owner: str                # operator name or participant id
    label: str
    created_at: str
    created_by: str
    revoked_at: str | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, str | None]:
        return {"id": self.id, "kind": self.kind, "owner": self.owner, "label": self.label,
                "created_at": self.created_at, "created_by": self.created_by,
                "revoked_at": self.revoked_at, "revoked_by": self.revoked_by}


def _row(r) -> ApiKey:
    return ApiKey(r["id"], r["kind"], r["owner"], r["label"], r["created_at"], r["created_by"],
                  r["revoked_at"], r["revoked_by"])


class ApiKeys:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, kind: str, owner: str, label: str, created_by: str
                     ) -> tuple[ApiKey, str]:
        """A new key and its printed form (shown once; only its hash is kept)."""
        if len(label) > MAX_LABEL:
            raise InvalidRequest(f"a key label is at most {MAX_LABEL} characters",
                                 code="invalid_label")
        key_id = new_secret_id()
        secret = secrets.token_urlsafe(32)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            await conn.execute(
                "INSERT INTO api_keys(id, kind, owner, label, secret_sha256, created_at, "
                "created_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, kind, owner, label, secret_sha256(secret), now, created_by))
        return (ApiKey(key_id, kind, owner, label, now, created_by, None, None),
                f"{PREFIX[kind]}_{key_id}_{secret}")

    async def get(self, key_id: str) -> ApiKey:
        row = await self.db.fetchone("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        if row is None:
            raise NotFound(f"unknown API key {key_id}", code="unknown_api_key",
                           message_ja=f"APIキー {key_id} は存在しません")
        return _row(row)

    async def list(self, kind: str, owner: str | None = None) -> list[ApiKey]:
        sql, params = "SELECT * FROM api_keys WHERE kind = ?", [kind]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        return [_row(r) for r in await self.db.fetchall(sql + " ORDER BY created_at, id", params)]

    async def revoke(self, key_id: str, by: str, *, kind: str | None = None) -> ApiKey:
        key = await self.get(key_id)
        if kind is not None and key.kind != kind:
            raise NotFound(f"{key_id} is not a {kind} key", code="unknown_api_key")
        if not key.active:
            raise FailedPrecondition(f"API key {key_id} was already revoked at {key.revoked_at}",
                                     code="api_key_revoked", message_ja="このキーは失効済みです")
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE id = ? "
                               "AND revoked_at IS NULL", (iso(utcnow()), by, key_id))
        return await self.get(key_id)

    async def revoke_all(self, kind: str, owner: str, by: str) -> int:
        async with self.db.transaction() as conn:
            cur = await conn.execute("UPDATE api_keys SET revoked_at = ?, revoked_by = ? WHERE "
                                     "kind = ? AND owner = ? AND revoked_at IS NULL",
                                     (iso(utcnow()), by, kind, owner))
        return cur.rowcount

    async def resolve(self, text: str) -> ApiKey | None:
        """The active key ``text`` is, None if it is not shaped like one of ours, else
        Unauthenticated (unknown, wrong secret, revoked)."""
        m = _FORM.match(text)
        if not m:
            return None
        row = await self.db.fetchone("SELECT * FROM api_keys WHERE id = ?", (m[2],))
        if row is None or row["kind"] != KIND_OF_PREFIX[m[1]] or \
                not secret_matches(m[3], row["secret_sha256"]):
            raise Unauthenticated("unknown API key", code="invalid_api_key",
                                  message_ja="APIキーが正しくありません")
        key = _row(row)
        if not key.active:
            raise Unauthenticated(f"API key {key.id} was revoked at {key.revoked_at}",
                                  code="api_key_revoked", message_ja="このAPIキーは失効しています")
        return key
