"""OperatorAccounts: the registry's operator accounts (``operators`` in registry.db)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from mesh.http_auth import ROLES
from mesh.passwords import hash_password, password_matches
from registry.operators.throttle import DbFailureThrottle

NAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
# A fixed hash to check against when the account does not exist, so an unknown name takes as
# long as a wrong password (no account enumeration by timing).
_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$"
               "50BjNmo/2GH+cGxJ5j5txx2vZcSIKAO8qr/ReQuC17Q")


@dataclass(frozen=True)
class Operator:
    name: str
    role: str
    status: str
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "status": self.status,
                "created_at": self.created_at, "updated_at": self.updated_at}


def validate_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidRequest("an operator name is 2-64 lowercase letters, digits, '.', '_' or "
                             "'-', starting with a letter", code="invalid_operator_name",
                             message_ja="オペレーター名は英小文字で始まる2〜64文字です")
    return name


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_role",
                             message_ja="ロールは admin か auditor です")
    return role


def _row(r) -> Operator:
    return Operator(r["name"], r["role"], r["status"], r["created_at"], r["updated_at"])


class OperatorAccounts:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.throttle = DbFailureThrottle(db)   # shared by every replica

    async def add(self, name: str, role: str, password: str) -> Operator:
        validate_name(name)
        validate_role(role)
        hashed = hash_password(password)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            if await (await conn.execute("SELECT 1 FROM operators WHERE name = ?", (name,))
                      ).fetchone():
                raise Conflict(f"operator {name} already exists",
                               message_ja=f"オペレーター {name} は登録済みです")
            await conn.execute("INSERT INTO operators(name, role, password_hash, status, "
                               "created_at, updated_at) VALUES (?, ?, ?, 'active', ?, ?)",
                               (name, role, hashed, now, now))
        return Operator(name, role, "active", now, now)

    async def get(self, name: str) -> Operator:
        row = await self.db.fetchone("SELECT * FROM operators WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"unknown operator {name}", message_ja=f"オペレーター {name} は未登録です",
                           code="unknown_operator")
        return _row(row)

    async def list(self) -> list[Operator]:
        return [_row(r) for r in await self.db.fetchall("SELECT * FROM operators ORDER BY name")]

    async def set_status(self, name: str, status: str) -> Operator:
        await self.get(name)
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE operators SET status = ?, updated_at = ? WHERE name = ?",
                               (status, iso(utcnow()), name))
        return await self.get(name)

    async def set_password(self, name: str, password: str) -> None:
        hashed = hash_password(password)
        await self.get(name)
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE operators SET password_hash = ?, updated_at = ? "
                               "WHERE name = ?", (hashed, iso(utcnow()), name))

    async def verify_password(self, name: str, password: str) -> Operator:
        """The active operator ``name`` if ``password`` is its password, else Unauthenticated
        (the same answer for an unknown name and a wrong password)."""
        wrong = Unauthenticated("wrong operator name or password", code="invalid_credentials",
                                message_ja="オペレーター名またはパスワードが違います")
        if await self.throttle.locked(name):
            raise Unauthenticated(f"too many wrong passwords for {name}; wait a few minutes",
                                  code="too_many_failures",
                                  message_ja="パスワードの誤りが続いたため一時的にロックしています")
        row = await self.db.fetchone("SELECT * FROM operators WHERE name = ?", (name,))
        if not await password_matches(row["password_hash"] if row else _DUMMY_HASH, password) \
                or row is None:
            await self.throttle.failed(name)
            raise wrong
        await self.throttle.succeeded(name)
        operator = _row(row)
        require_active(operator)
        return operator


def require_active(operator: Operator) -> None:
    if operator.status != "active":
        raise Unauthenticated(f"operator {operator.name} is disabled", code="operator_disabled",
                              message_ja=f"オペレーター {operator.name} は無効化されています")
