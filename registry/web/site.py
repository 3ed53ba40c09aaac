"""Wiring of the registry's pages onto its HTTP app: the shared page machinery of
``mesh/web`` with the registry's templates, static files, messages and operator sign-in."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from mesh.http_auth import OPERATOR, OPERATOR_READ, Principal
from mesh.web.i18n import MessageCatalog
from mesh.web.render import HERE as SHARED
from mesh.web.render import Site, setup_pages
from mesh.web.sessions import SessionStore
from mesh.web.signin import add_signin_routes, current_session
from mesh.web.static import StaticFiles
from registry.operators.accounts import OperatorAccounts

HERE = Path(__file__).parent
SESSIONS = web.AppKey("web_sessions", SessionStore)

NAV = [("nav.catalog", "/"), ("nav.organizations", "/organizations/"), ("nav.themes", "/themes/"),
       ("nav.developers", "/developers/"), ("nav.admin", "/admin/")]


def message_files() -> list[Path]:
    return [SHARED / "messages.yaml", *sorted((HERE / "messages").glob("*.yaml"))]


def setup_registry_web(app: web.Application, sessions: SessionStore,
                       accounts: OperatorAccounts) -> None:
    async def signed_in(request: web.Request) -> Principal | None:
        session = await current_session(request, sessions)
        return Principal(OPERATOR, session.subject, session.role, "session") if session else None

    async def csrf_of(request: web.Request) -> str:
        session = await current_session(request, sessions)
        return session.csrf if session else ""

    async def check_password(name: str, password: str) -> tuple[str, str]:
        operator = await accounts.verify_password(name, password)
        return operator.name, operator.role

    site = Site(MessageCatalog.load(message_files()),
                StaticFiles([HERE / "static", SHARED / "static"]), "site.registry", NAV,
                signin_path="/admin/login", signed_in=signed_in, csrf_of=csrf_of)
    app[SESSIONS] = sessions
    setup_pages(app, site, HERE / "templates")
    add_signin_routes(app, prefix="/admin", sessions=sessions, check_password=check_password,
                      signed_in_door=OPERATOR_READ)
