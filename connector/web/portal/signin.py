"""Sign-in to the portal through the platform's OpenID provider, and sign-out.

``GET /portal/login`` shows one button; ``POST /portal/login`` (double-submit token) starts
the flow and sends the browser to the provider, with the state also in a short-lived
``HttpOnly`` cookie (``SameSite=Lax``: the provider's redirect back is a cross-site top-level
navigation). ``GET /portal/callback`` finishes it (``oidc.OidcClient.finish``), starts a resident session
(a new id; the portal's own cookie and path) and answers with a short page that moves on to
the portal by itself (``meta refresh``, no script). A refused sign-in is shown as a
page with the reason and a way to start again, status 401.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import web

from connector.credentials import RESIDENT_ROLE
from connector.web.portal.oidc import OidcClient, OidcSettings, PendingSignins
from connector.web.portal.site import PORTAL_SESSIONS
from mesh.config import parse_hostport
from mesh.errors import AreameshError, FailedPrecondition, Unauthenticated
from mesh.http_auth import PUBLIC, RESIDENT_SELF
from mesh.web.forms import read_form
from mesh.web.i18n import request_language
from mesh.web.render import page, render
from mesh.web.security_headers import CSP
from mesh.web.sessions import CSRF_FIELD, check_signin_token, signin_token

if TYPE_CHECKING:
    from connector.app import ConnectorApp

log = logging.getLogger("areamesh.connector.portal")

STATE_COOKIE = "am_portal_state"
OIDC = web.AppKey("portal_oidc", object)


def safe_next(target: str) -> str:
    if target.startswith("/portal/") and not target.startswith("//") and "\\" not in target \
            and not target.startswith(("/portal/login", "/portal/callback", "/portal/logout")):
        return target[:500]
    return "/portal/data"


def add_routes(app: web.Application, node: ConnectorApp) -> None:
    sessions = app[PORTAL_SESSIONS]

    def client() -> OidcClient:
        if OIDC not in app:
            c = node.config
            if not c.portal_oidc_issuer or not c.portal_oidc_client_id \
                    or not c.portal_oidc_client_secret_file:
                raise FailedPrecondition(
                    "the resident portal's sign-in is not set up: start the connector with "
                    "--portal-oidc-issuer, --portal-oidc-client-id and "
                    "--portal-oidc-client-secret-file", code="portal_signin_not_configured",
                    message_ja="住民ポータルのサインインが設定されていません。コネクタの運用者に"
                               "お問い合わせください")
            host, _ = parse_hostport(c.http_listen, what="--http")
            base = c.portal_base_url or f"http://{host}:{node.http_port}"
            app[OIDC] = OidcClient(OidcSettings(c.portal_oidc_issuer, c.portal_oidc_client_id,
                                                c.portal_oidc_client_secret_file,
                                                c.portal_oidc_resident_claim, base),
                                   PendingSignins(sessions.db))
        return app[OIDC]  # type: ignore[return-value]

    async def show(request: web.Request, *, error: str = "", code: str = "",
                   status: int = 200) -> web.Response:
        holder = web.Response()
        token = signin_token(request, holder)
        configured = True
        try:
            client()
        except FailedPrecondition as exc:      # no provider set up: say so instead of a button
            configured, code = False, exc.code or ""
            error = exc.message_ja if request_language(request) == "ja" and exc.message_ja \
                else str(exc)
        response = await render(request, "portal/login.html", {
            "signin_csrf": token, "next": safe_next(request.query.get("next", "")),
            "error": error, "code": code, "configured": configured}, status=status)
        for cookie in holder.cookies.values():
            response.cookies[cookie.key] = cookie
        # the sign-in form's POST is answered with a redirect to the provider, which the CSP's
        # form-action must allow (Chromium applies it to a form's redirects too)
        provider = await provider_origin()
        if provider:
            response.headers["Content-Security-Policy"] = CSP.replace(
                "form-action 'self'", f"form-action 'self' {provider}")
        return response

    async def provider_origin() -> str:
        try:
            endpoint = (await client().metadata())["authorization_endpoint"]
        except AreameshError:
            return ""
        parts = urlsplit(endpoint)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else ""

    @page(PUBLIC)
    async def login_form(request: web.Request) -> web.Response:
        return await show(request)

    @page(PUBLIC)
    async def login(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        check_signin_token(request, form.get(CSRF_FIELD, ""))
        url, state = await client().begin(safe_next(form.get("next", "")))
        response = web.HTTPSeeOther(url)
        response.set_cookie(STATE_COOKIE, state, httponly=True, samesite="Lax", path="/portal",
                            secure=request.secure, max_age=600)
        raise response

    @page(PUBLIC)
    async def callback(request: web.Request) -> web.Response:
        params = {k: v for k, v in request.query.items() if len(v) <= 4096}
        try:
            resident, next_path = await client().finish(params,
                                                        request.cookies.get(STATE_COOKIE, ""))
        except Unauthenticated as exc:
            log.warning("portal sign-in refused from %s: %s (%s)", request.remote, exc.code, exc)
            ja = request_language(request) == "ja" and exc.message_ja
            response = await show(request, error=exc.message_ja if ja else str(exc),
                                  code=exc.code or "", status=401)
            response.del_cookie(STATE_COOKIE, path="/portal")
            return response
        session_id, _ = await sessions.create(resident, RESIDENT_ROLE,
                                              f"oidc {request.remote or '?'}")
        log.info("resident %s signed in to the portal from %s", resident, request.remote)
        # a page of our own that moves on (not a redirect): the browser arrived here from the
        # provider's site, and a SameSite=Strict cookie is not sent on a redirect chain that
        # began on another site; this page's own navigation is same-site
        response = await render(request, "portal/signed_in.html", {"next": safe_next(next_path)})
        response.del_cookie(STATE_COOKIE, path="/portal")
        sessions.set_cookie(request, response, session_id)
        return response

    @page(RESIDENT_SELF)
    async def logout(request: web.Request) -> web.StreamResponse:
        await sessions.end(sessions.id_of(request))
        response = web.HTTPSeeOther("/portal/login")
        sessions.clear_cookie(response)
        raise response

    @page(RESIDENT_SELF)
    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther("/portal/data")

    app.router.add_get("/portal/login", login_form)
    app.router.add_post("/portal/login", login)
    app.router.add_get("/portal/callback", callback)
    app.router.add_post("/portal/logout", logout)
    app.router.add_get("/portal/", home)
