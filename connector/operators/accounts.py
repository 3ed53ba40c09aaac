"""ConsoleAccounts: who may sign in to the connector's console (``console.db``).

Roles as at the registry: ``admin`` changes, ``auditor`` reads. An account may be limited to
one hosted tenant (``tenant``: the participant id of a body whose datasets this connector
hosts under shared use, 共同利用): its principal carries that id as ``scope`` and the console
shows and changes only that tenant's datasets, offers and agreements. An account without a
tenant sees the whole node. ``DATA_DIR/operator.key`` stays for scripts (principal role admin).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import Conflict, InvalidRequest, NotFound, Unauthenticated
from mesh.http_auth import ROLES
from mesh.ids import validate_corporate_number, validate_local_government_code
from mesh.passwords import FailureThrottle, hash_password, password_matches
from mesh.web.sessions import WEB_SESSIONS_MIGRATION

NAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
_DUMMY_HASH = ("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$"
               "50BjNmo/2GH+cGxJ5j5txx2vZcSIKAO8qr/ReQuC17Q")

MIGRATIONS = [
    # 1: console accounts
    """
    CREATE TABLE console_accounts (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'auditor')),
        tenant TEXT NOT NULL DEFAULT '',
        password_hash TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )
    """,
    # 2: browser sessions of the console (mesh/web/sessions.py)
    WEB_SESSIONS_MIGRATION,
    # 3: the resident portal's sign-ins under way (connector/web/portal/oidc.py): state, nonce
    # and PKCE verifier, single use, 10 minutes; any process of the connector can finish one
    """
    CREATE TABLE portal_signins (
        state_sha256 TEXT PRIMARY KEY,
        nonce TEXT NOT NULL,
        verifier TEXT NOT NULL,
        next TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )
    """,
]


def open_console_db(data_dir: Path) -> Database:
    return Database(data_dir / "console.db", MIGRATIONS, synchronous="FULL")


@dataclass(frozen=True)
class ConsoleAccount:
    name: str
    role: str
    tenant: str
    status: str
    created_at: str

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "tenant": self.tenant,
                "status": self.status, "created_at": self.created_at}


def _row(r) -> ConsoleAccount:
    return ConsoleAccount(r["name"], r["role"], r["tenant"], r["status"], r["created_at"])


class ConsoleAccounts:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.throttle = FailureThrottle()

    async def add(self, name: str, role: str, password: str, tenant: str = "") -> ConsoleAccount:
        if not NAME.match(name):
            raise InvalidRequest("an account name is 2-64 lowercase letters, digits, '.', '_' or "
                                 "'-', starting with a letter", code="invalid_operator_name",
                                 message_ja="アカウント名は英小文字で始まる2〜64文字です")
        if role not in ROLES:
            raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", code="invalid_role",
                                 message_ja="ロールは admin か auditor です")
        if tenant:   # a local government's code or a company's 法人番号, check digit included
            (validate_local_government_code if len(tenant) == 6 else validate_corporate_number)(tenant)
        hashed = hash_password(password)
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            if await (await conn.execute("SELECT 1 FROM console_accounts WHERE name = ?",
                                         (name,))).fetchone():
                raise Conflict(f"account {name} already exists",
                               message_ja=f"アカウント {name} は登録済みです")
            await conn.execute("INSERT INTO console_accounts VALUES (?, ?, ?, ?, 'active', ?, ?)",
                               (name, role, tenant, hashed, now, now))
        return ConsoleAccount(name, role, tenant, "active", now)

    async def get(self, name: str) -> ConsoleAccount:
        row = await self.db.fetchone("SELECT * FROM console_accounts WHERE name = ?", (name,))
        if row is None:
            raise NotFound(f"unknown account {name}", message_ja=f"アカウント {name} は未登録です",
                           code="unknown_account")
        return _row(row)

    async def list(self) -> list[ConsoleAccount]:
        return [_row(r) for r in await self.db.fetchall(
            "SELECT * FROM console_accounts ORDER BY name")]

    async def set_status(self, name: str, status: str) -> ConsoleAccount:
        await self.get(name)
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE console_accounts SET status = ?, updated_at = ? "
                               "WHERE name = ?", (status, iso(utcnow()), name))
            if status != "active":
                await conn.execute("DELETE FROM web_sessions WHERE subject = ?", (name,))
        return await self.get(name)

    async def set_password(self, name: str, password: str) -> None:
        await self.get(name)
        hashed = hash_password(password)
        async with self.db.transaction() as conn:
            await conn.execute("UPDATE console_accounts SET password_hash = ?, updated_at = ? "
                               "WHERE name = ?", (hashed, iso(utcnow()), name))
            await conn.execute("DELETE FROM web_sessions WHERE subject = ?", (name,))

    async def verify_password(self, name: str, password: str) -> ConsoleAccount:
        """The active account ``name`` if ``password`` is its password, else Unauthenticated
        (the same answer, after the same work, for an unknown name)."""
        if self.throttle.locked(name):
            raise Unauthenticated(f"too many wrong passwords for {name}; wait a few minutes",
                                  code="too_many_failures",
                                  message_ja="パスワードの誤りが続いたため一時的にロックしています")
        row = await self.db.fetchone("SELECT * FROM console_accounts WHERE name = ?", (name,))
        if not await password_matches(row["password_hash"] if row else _DUMMY_HASH, password) \
                or row is None:
            self.throttle.failed(name)
            raise Unauthenticated("wrong account name or password", code="invalid_credentials",
                                  message_ja="アカウント名またはパスワードが違います")
        self.throttle.succeeded(name)
        account = _row(row)
        require_active(account)
        return account


def require_active(account: ConsoleAccount) -> None:
    if account.status != "active":
        raise Unauthenticated(f"account {account.name} is disabled", code="operator_disabled",
                              message_ja=f"アカウント {account.name} は無効化されています")
