"""RegistryAuthenticator: the principal behind a registry HTTP request.

- ``Authorization: Bearer amop_…``: an operator's API key; the operator must be active.
- ``Authorization: Bearer ampt_…``: a participant's API key; the participant must not be
  suspended.
- ``Authorization: Basic …``: an operator's name and password (argon2-checked, throttled).
- no ``Authorization`` header: the console's session cookie (``mesh/web/sessions.py``), its
  CSRF token checked on every state-changing request; the account must still be active and
  its current role is the one that counts.

The registry's HTTP port is plain HTTP: bind it to loopback or an admin network, or put a TLS
proxy in front, before sending credentials over it (docs/security.md).
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from mesh.errors import PermissionDenied, Unauthenticated
from mesh.http_auth import OPERATOR, PARTICIPANT, Principal
from mesh.web.sessions import SessionStore
from mesh.web.signin import session_principal
from registry.operators.accounts import OperatorAccounts, require_active
from registry.operators.api_keys import OPERATOR_KEY, ApiKeys
from registry.operators.audit_log import Actor
from registry.store import RegistryStore


class RegistryAuthenticator:
    def __init__(self, store: RegistryStore, accounts: OperatorAccounts, keys: ApiKeys,
                 sessions: SessionStore | None = None) -> None:
        self.store, self.accounts, self.keys = store, accounts, keys
        self.sessions = sessions

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return await self._key(value.strip())
        if scheme.lower() == "basic":
            name, password = _basic(value.strip())
            operator = await self.accounts.verify_password(name, password)
            return Principal(OPERATOR, operator.name, operator.role, "password")
        if not header and self.sessions is not None:
            return await self.session(request)
        return None

    async def session(self, request: web.Request) -> Principal | None:
        """The operator signed in to the console, if the request carries a live session."""
        found = await session_principal(request, self.sessions, OPERATOR)
        if found is None:
            return None
        operator = await self.accounts.get(found[0].id)
        require_active(operator)
        return Principal(OPERATOR, operator.name, operator.role, "session")

    async def _key(self, text: str) -> Principal | None:
        key = await self.keys.resolve(text)
        if key is None:
            return None
        if key.kind == OPERATOR_KEY:
            operator = await self.accounts.get(key.owner)
            require_active(operator)
            return Principal(OPERATOR, operator.name, operator.role, key.id)
        participant = await self.store.participant(key.owner)
        if participant.status == "suspended":
            raise PermissionDenied(f"participant {participant.id} is suspended",
                                   message_ja="参加者が停止中です", code="participant_suspended")
        return Principal(PARTICIPANT, participant.id, "", key.id)


def _basic(value: str) -> tuple[str, str]:
    try:
        name, sep, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        sep = ""
    if not sep:
        raise Unauthenticated("malformed Basic credentials", code="invalid_credentials",
                              message_ja="認証情報の形式が正しくありません")
    return name, password


def http_actor(request: web.Request, principal: Principal) -> Actor:
    """The audit log's actor for an operator's HTTP request (the peer address, not a header
    a client could forge)."""
    via = principal.credential if principal.credential in ("password", "session") \
        else f"key {principal.credential}"
    return Actor(principal.id, principal.role, f"http {request.remote or '?'} ({via})")
