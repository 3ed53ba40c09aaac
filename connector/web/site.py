"""Wiring of the connector's pages onto its HTTP app: the shared page machinery of
``mesh/web`` with the connector's templates, static files, messages and console sign-in."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from connector.operators.accounts import ConsoleAccounts
from connector.web.portal import setup_portal_site
from mesh.http_auth import NODE_OPERATOR, NODE_READ, Principal
from mesh.web.i18n import MessageCatalog
from mesh.web.render import HERE as SHARED
from mesh.web.render import Site, setup_pages
from mesh.web.sessions import SessionStore
from mesh.web.signin import add_signin_routes, current_session
from mesh.web.static import StaticFiles

HERE = Path(__file__).parent
SESSIONS = web.AppKey("console_sessions", SessionStore)
ACCOUNTS = web.AppKey("console_accounts", ConsoleAccounts)

NAV = [("nav.console", "/admin/"), ("nav.datasets", "/admin/datasets/"),
       ("nav.agreements", "/admin/agreements/"), ("nav.transfers", "/admin/transfers/"),
       ("nav.node", "/admin/node/"), ("nav.catalog", "/admin/catalog/")]


def message_files() -> list[Path]:
    return [SHARED / "messages.yaml", *sorted((HERE / "messages").glob("*.yaml"))]


def setup_connector_web(app: web.Application, sessions: SessionStore,
                        accounts: ConsoleAccounts) -> None:
    async def signed_in(request: web.Request) -> Principal | None:
        session = await current_session(request, sessions)
        return Principal(NODE_OPERATOR, session.subject, session.role, "session") \
            if session else None

    async def csrf_of(request: web.Request) -> str:
        session = await current_session(request, sessions)
        return session.csrf if session else ""

    async def check_password(name: str, password: str) -> tuple[str, str]:
        account = await accounts.verify_password(name, password)
        return account.name, account.role

    messages = MessageCatalog.load(message_files())
    static = StaticFiles([HERE / "static", SHARED / "static"])
    site = Site(messages, static, "site.connector", NAV,
                signin_path="/admin/login", signed_in=signed_in, csrf_of=csrf_of,
                sections={"/portal/": setup_portal_site(app, messages, static, sessions.db)})
    app[SESSIONS] = sessions
    app[ACCOUNTS] = accounts
    setup_pages(app, site, HERE / "templates")
    add_signin_routes(app, prefix="/admin", sessions=sessions, check_password=check_password,
                      signed_in_door=NODE_READ)
