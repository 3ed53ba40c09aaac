"""The portal's face (its own name, menu, sign-in and session cookie) and its routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from connector.credentials import RESIDENT_ROLE, portal_sessions
from mesh.db import Database
from mesh.http_auth import RESIDENT, Principal
from mesh.web.i18n import MessageCatalog
from mesh.web.render import Site
from mesh.web.sessions import SessionStore
from mesh.web.signin import current_session
from mesh.web.static import StaticFiles

if TYPE_CHECKING:
    from connector.app import ConnectorApp

PORTAL_SESSIONS = web.AppKey("portal_sessions", SessionStore)
NAV = [("portal.nav.data", "/portal/data"), ("portal.nav.flows", "/portal/flows"),
       ("portal.nav.consents", "/portal/consents"), ("portal.nav.links", "/portal/links")]


def setup_portal_site(app: web.Application, messages: MessageCatalog, static: StaticFiles,
                      db: Database) -> Site:
    """The portal's section of the connector's site; residents' sessions live in ``db``."""
    store = portal_sessions(db)
    app[PORTAL_SESSIONS] = store

    async def resident_session(request: web.Request):
        session = await current_session(request, store)
        return session if session is not None and session.role == RESIDENT_ROLE else None

    async def signed_in(request: web.Request) -> Principal | None:
        session = await resident_session(request)
        return Principal(RESIDENT, session.subject, credential="session") if session else None

    async def csrf_of(request: web.Request) -> str:
        session = await resident_session(request)
        return session.csrf if session else ""

    return Site(messages, static, "portal.brand", NAV, signin_path="/portal/login",
                signed_in=signed_in, csrf_of=csrf_of)


def add_portal_pages(app: web.Application, node: ConnectorApp) -> None:
    from connector.web.portal import consents, data, links, signin

    signin.add_routes(app, node)
    data.add_routes(app, node)
    consents.add_routes(app, node)
    links.add_routes(app, node)
