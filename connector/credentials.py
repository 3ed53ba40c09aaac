"""Who calls the connector's HTTP API: its operator (``DATA_DIR/operator.key``) or the
municipality's resident portal (``DATA_DIR/portal.token``), each by ``Authorization: Bearer``.
Both files are 0600 and created on first start; docs/security.md says how to rotate them."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mesh.bearer_files import BearerFile, bearer_of
from mesh.http_auth import NODE_OPERATOR, PORTAL, Principal

OPERATOR_KEY_FILE = "operator.key"
PORTAL_TOKEN_FILE = "portal.token"


def operator_key(data_dir: Path) -> BearerFile:
    return BearerFile(data_dir / OPERATOR_KEY_FILE)


def portal_token_file(data_dir: Path) -> BearerFile:
    return BearerFile(data_dir / PORTAL_TOKEN_FILE)


class ConnectorAuthenticator:
    def __init__(self, data_dir: Path, identity: str) -> None:
        self.operator = operator_key(data_dir)
        self.portal = portal_token_file(data_dir)
        self.operator.ensure()
        self.portal.ensure()
        self.identity = identity

    async def authenticate(self, request: web.Request) -> Principal | None:
        token = bearer_of(request.headers.get("Authorization", ""))
        if token is None:
            return None
        if self.operator.matches(token):
            return Principal(NODE_OPERATOR, self.identity, credential=OPERATOR_KEY_FILE)
        if self.portal.matches(token):
            return Principal(PORTAL, "resident-portal", credential=PORTAL_TOKEN_FILE)
        return None
