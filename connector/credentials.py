"""Who calls the connector's HTTP API: its operator (``DATA_DIR/operator.key``), the
municipality's resident portal (``DATA_DIR/portal.token``) or one of its own apps reading the
NGSI-LD facade (``amld_…`` keys, ``connector/ngsi_ld/keys.py``), each by ``Authorization: Bearer``;
both files are 0600 and created on first start; docs/security.md says how to rotate them. An
NGSI v2 broker's notifications (``/ngsi/v2/notify/<dataset>``) bring that dataset's
subscription token (``connector/subscriptions/orion.py``).
Without an ``Authorization`` header, a browser session: under ``/portal/`` a resident's
(cookie ``am_portal``, signed in through the platform's OpenID provider, principal
``RESIDENT`` with the resident id from the session, never from the URL or a form), elsewhere a
console account's (``connector/operators``: the account must still be active, its current role
and tenant count). A state-changing request of either must carry the session's CSRF token."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from connector.ngsi_ld.keys import PREFIX as FACADE_KEY_PREFIX
from connector.ngsi_ld.keys import FacadeKeys
from connector.operators.accounts import ConsoleAccounts, require_active
from connector.subscriptions.orion_store import NOTIFY_PREFIX, OrionSubscriptionStore
from mesh.bearer_files import BearerFile, bearer_of
from mesh.db import Database
from mesh.http_auth import (
    ADMIN,
    NGSI_LD_APP,
    NGSI_NOTIFIER,
    NODE_OPERATOR,
    PORTAL,
    RESIDENT,
    ROLES,
    Principal,
)
from mesh.web.sessions import SessionStore
from mesh.web.signin import session_principal

OPERATOR_KEY_FILE = "operator.key"
PORTAL_TOKEN_FILE = "portal.token"
PORTAL_PREFIX = "/portal"
RESIDENT_ROLE = "resident"      # the role column of a resident's row in web_sessions


def portal_sessions(db: Database) -> SessionStore:
    """Residents' sessions: their own cookie and path, so an operator's and a resident's
    sessions in one browser never mix."""
    return SessionStore(db, cookie="am_portal", path=PORTAL_PREFIX)


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
        self.facade_keys = FacadeKeys(data_dir)
        self.identity = identity
        self.sessions, self.accounts = sessions, accounts
        self.residents = portal_sessions(sessions.db) if sessions is not None else None
        self.notifications = OrionSubscriptionStore(data_dir)

    async def authenticate(self, request: web.Request) -> Principal | None:
        header = request.headers.get("Authorization", "")
        if not header and self.sessions is not None and self.accounts is not None:
            if request.path == PORTAL_PREFIX or request.path.startswith(PORTAL_PREFIX + "/"):
                return await self.resident(request)
            return await self.session(request)
        token = bearer_of(header)
        if token is None:
            return None
        if self.operator.matches(token):
            return Principal(NODE_OPERATOR, self.identity, ADMIN, OPERATOR_KEY_FILE)
        if self.portal.matches(token):
            return Principal(PORTAL, "resident-portal", credential=PORTAL_TOKEN_FILE)
        if request.path.startswith(NOTIFY_PREFIX):
            dataset_id = request.path[len(NOTIFY_PREFIX):]
            sub = self.notifications.verify(dataset_id, token)
            if sub is not None:
                return Principal(NGSI_NOTIFIER, dataset_id, credential=sub.subscription_id)
        if token.startswith(FACADE_KEY_PREFIX) and (key := self.facade_keys.check(token)):
            return Principal(NGSI_LD_APP, key.id, credential=key.id)
        return None

    async def session(self, request: web.Request) -> Principal | None:
        """The console account signed in with the request's session cookie, if any."""
        found = await session_principal(request, self.sessions, NODE_OPERATOR)
        if found is None or found[0].role not in ROLES:
            return None
        account = await self.accounts.get(found[0].id)
        require_active(account)
        return Principal(NODE_OPERATOR, account.name, account.role, "session", account.tenant)

    async def resident(self, request: web.Request) -> Principal | None:
        """The resident signed in with the request's portal session, if any."""
        assert self.residents is not None
        found = await session_principal(request, self.residents, RESIDENT)
        if found is None or found[0].role != RESIDENT_ROLE:
            return None
        return Principal(RESIDENT, found[0].id, credential="session")
