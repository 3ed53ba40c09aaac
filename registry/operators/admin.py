"""AdminService: the registry's admin actions, as the CLI and the HTTP admin API both call them.

Each action checks that the actor may change things (role ``admin``, or ``shell`` for the CLI,
whose user already holds the data directory), does it through ``RegistryStore`` /
``OperatorAccounts`` / ``ApiKeys``, and writes one audit-log entry with the outcome: ``ok``, or
the refusal's error code (a refused attempt is worth knowing about too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from mesh.durations import parse_duration
from mesh.errors import AreameshError, InvalidRequest, PermissionDenied
from mesh.jointoken import JoinToken
from mesh.web.sessions import SessionStore
from registry.ca.authority import CertificateAuthority
from registry.operators.accounts import Operator, OperatorAccounts
from registry.operators.api_keys import OPERATOR_KEY, ApiKey, ApiKeys
from registry.operators.audit_log import Actor, AdminAuditLog
from registry.store import Participant, RegistryStore

T = TypeVar("T")
MAX_CRITERIA = 100_000


class AdminService:
    def __init__(self, store: RegistryStore, ca: CertificateAuthority) -> None:
        self.store = store
        self.ca = ca
        self.accounts = OperatorAccounts(store.db)
        self.keys = ApiKeys(store.db)
        self.audit = AdminAuditLog(store.db)

    async def run(self, actor: Actor, action: str, target: str, details: dict[str, Any],
                  fn: Callable[[], Awaitable[T]], *, change: bool = True) -> T:
        """Do ``fn`` as ``actor`` and record it, whatever the outcome."""
        try:
            if change and not actor.may_change:
                raise PermissionDenied(f"{actor.name} ({actor.role}) may read but not change",
                                       message_ja="閲覧のみの権限です", code="forbidden_for_role")
            result = await fn()
        except AreameshError as exc:
            await self.audit.append(actor, action, target, details, exc.code)
            raise
        await self.audit.append(actor, action, target, details, "ok")
        return result

    # ---- participants ------------------------------------------------------------------------
    async def add_participant(self, actor: Actor, pid: str, name: str, kind: str) -> Participant:
        return await self.run(actor, "participant.add", pid, {"name": name, "type": kind},
                              lambda: self.store.add_participant(pid, name, kind))

    async def certify(self, actor: Actor, pid: str) -> Participant:
        return await self.run(actor, "participant.certify", pid, {},
                              lambda: self.store.certify_participant(pid))

    async def suspend(self, actor: Actor, pid: str, reason: str) -> tuple[list[str], int]:
        """Revoke every node certificate of ``pid``; (serials, new revocation list number)."""
        async def act() -> tuple[list[str], int]:
            serials = await self.store.suspend_participant(pid, reason)
            return serials, (await self.store.current_crl(self.ca, await self.crl_validity())).number

        return await self.run(actor, "participant.suspend", pid, {"reason": reason}, act)

    async def reinstate(self, actor: Actor, pid: str) -> None:
        await self.run(actor, "participant.reinstate", pid, {},
                       lambda: self.store.reinstate_participant(pid))

    async def add_hosting(self, actor: Actor, tenant: str, host: str) -> None:
        await self.run(actor, "hosting.add", tenant, {"host": host},
                       lambda: self.store.add_hosting(tenant, host))

    async def remove_hosting(self, actor: Actor, tenant: str, host: str) -> None:
        await self.run(actor, "hosting.remove", tenant, {"host": host},
                       lambda: self.store.remove_hosting(tenant, host))

    async def set_criteria(self, actor: Actor, text: str) -> None:
        async def act() -> None:
            if len(text) > MAX_CRITERIA:
                raise InvalidRequest(f"criteria text is longer than {MAX_CRITERIA:,} characters")
            await self.store.set_meta("certification_criteria", text)

        await self.run(actor, "criteria.set", "certification_criteria", {"chars": len(text)}, act)

    # ---- join tokens and nodes ---------------------------------------------------------------
    async def create_token(self, actor: Actor, pid: str, ttl: str) -> JoinToken:
        async def act() -> JoinToken:
            try:
                lifetime = parse_duration(ttl)
            except ValueError as exc:
                raise InvalidRequest(str(exc), code="invalid_ttl",
                                     message_ja="有効期間の形式が正しくありません（例: 30m, 24h, 7d）"
                                     ) from None
            return await self.store.create_token(pid, lifetime, self.ca.fingerprint)

        return await self.run(actor, "token.create", pid, {"ttl": ttl}, act)

    async def revoke_token(self, actor: Actor, token_id: str) -> None:
        await self.run(actor, "token.revoke", token_id, {},
                       lambda: self.store.revoke_token(token_id, actor.name))

    async def revoke_node(self, actor: Actor, pid: str, node: str, reason: str
                          ) -> tuple[list[str], int]:
        async def act() -> tuple[list[str], int]:
            serials = await self.store.revoke_node(pid, node, reason)
            return serials, (await self.store.current_crl(self.ca, await self.crl_validity())).number

        return await self.run(actor, "node.revoke", f"{pid}/{node}", {"reason": reason}, act)

    async def crl_validity(self) -> timedelta:
        return parse_duration(await self.store.meta("crl_validity") or "1h")

    # ---- operators and API keys ----------------------------------------------------------------
    async def add_operator(self, actor: Actor, name: str, role: str, password: str) -> Operator:
        return await self.run(actor, "operator.add", name, {"role": role},
                              lambda: self.accounts.add(name, role, password))

    async def disable_operator(self, actor: Actor, name: str) -> Operator:
        async def act() -> Operator:
            operator = await self.accounts.set_status(name, "disabled")
            await SessionStore(self.store.db).end_all(name)     # signed out of the console
            return operator

        return await self.run(actor, "operator.disable", name, {}, act)

    async def enable_operator(self, actor: Actor, name: str) -> Operator:
        return await self.run(actor, "operator.enable", name, {},
                              lambda: self.accounts.set_status(name, "active"))

    async def set_password(self, actor: Actor, name: str, password: str) -> None:
        """A new password; every console session of the account ends (whoever knew the old
        password is signed out too)."""
        async def act() -> None:
            await self.accounts.set_password(name, password)
            await SessionStore(self.store.db).end_all(name)

        await self.run(actor, "operator.password", name, {}, act)

    async def create_key(self, actor: Actor, kind: str, owner: str, label: str
                         ) -> tuple[ApiKey, str]:
        """A new API key for an operator or a participant; (key, secret shown once)."""
        async def act() -> tuple[ApiKey, str]:
            if kind == OPERATOR_KEY:
                await self.accounts.get(owner)
            else:
                await self.store.participant(owner)
            return await self.keys.create(kind, owner, label, actor.name)

        return await self.run(actor, f"{kind}_key.create", owner, {"label": label}, act)

    async def revoke_key(self, actor: Actor, kind: str, key_id: str) -> ApiKey:
        return await self.run(actor, f"{kind}_key.revoke", key_id, {},
                              lambda: self.keys.revoke(key_id, actor.name, kind=kind))
