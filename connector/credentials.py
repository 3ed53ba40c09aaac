"""Who calls the connector's HTTP API: its operator (``DATA_DIR/operator.key``) or the
municipality's resident portal (``DATA_DIR/portal.token``), each by ``Authorization: Bearer``;
both files are 0600 and created on first start; docs/security.md says how to rotate them.
Without an ``Authorization`` header, a console session (``connector/operators``): the account
must still be active, its current role and tenant count, and a state-changing request must
carry the session's CSRF token."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from connector.operators.accounts import ConsoleAccounts, require_active
from mesh.bearer_files import BearerFile, bearer_of
from mesh.http_auth import ADMIN, NODE_OPERATOR, PORTAL, Principal
from mesh.web.sessions import SessionStore
from mesh.web.signin import session_principal

OPERATOR_KEY_FILE = "operator.key"
PORTAL_TOKEN_FILE = "portal.token"


def operator_key(data_dir: Path) -> BearerFile:
    return BearerFile(data_dir / OPERATOR_KEY_FILE)


def portal_token_file(data_dir: Path) -> BearerFile:
    return BearerFile(data_dir / PORTAL_TOKEN_FILE)


class ConnectorAuthenticator:
    def __init__(self, data_dir: Path, identity: str, sessions: SessionStore | None = None,
                 accounts: ConsoleAccounts | None = None) -> None:
        self.operator = operator_key(data_dir)
        self.portal = portal_token_file(data_dir)
        self.operator.ensure()
        self.portal.ensure()
        self.identity = identity
        self.sessions, self.accounts = sessions, accounts

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if not header and self.sessions is not None and self.accounts is not None:
            return await self.session(request)
        token = bearer_of(header)
        if token is None:
            return None
        if self.operator.matches(token):
            return Principal(NODE_OPERATOR, self.identity, ADMIN, OPERATOR_KEY_FILE)
        if self.portal.matches(token):
            return Principal(PORTAL, "resident-portal", credential=PORTAL_TOKEN_FILE)
        return None

    async def session(self, request: web.Request) -> Principal | None:
        """The console account signed in with the request's session cookie, if any."""
        found = await session_principal(request, self.sessions, NODE_OPERATOR)
        if found is None:
            return None
        account = await self.accounts.get(found[0].id)
        require_active(account)
        return Principal(NODE_OPERATOR, account.name, account.role, "session", account.tenant)
