"""Sign-in and sign-out of a console, shared by the registry's and the connector's.

``add_signin_routes`` adds ``GET/POST {prefix}/login`` and ``POST {prefix}/logout``. The
server supplies how a name and password are checked (the registry: operator accounts with
argon2id and lockout) and how a session's subject is turned back into a principal on each
request (``session_principal``; the account may have been disabled since).

A wrong password re-shows the form with the catalog's message and status 401; the form's
double-submit token must match (``mesh.web.sessions``). After sign-in the browser goes to
``next`` only if it is a path of this console, never to another site.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from mesh.errors import Unauthenticated
from mesh.http_auth import PUBLIC, Door, Principal
from mesh.web.forms import field, read_form
from mesh.web.i18n import request_language
from mesh.web.render import page, render
from mesh.web.sessions import (
    CSRF_FIELD,
    SessionStore,
    WebSession,
    check_signin_token,
    require_csrf,
    signin_token,
)

log = logging.getLogger("areamesh.web.signin")

CheckPassword = Callable[[str, str], Awaitable[tuple[str, str]]]   # (name, password) → (subject, role)
_CACHE = web.RequestKey("areamesh.web_sessions", dict)  # cookie name → its session, per request


async def current_session(request: web.Request, sessions: SessionStore) -> WebSession | None:
    """The live session the request's cookie names (read once per request)."""
    read = request.setdefault(_CACHE, {})
    if sessions.cookie not in read:
        cookie = sessions.id_of(request)
        read[sessions.cookie] = await sessions.get(cookie) if cookie else None
    return read[sessions.cookie]


async def session_principal(request: web.Request, sessions: SessionStore, kind: str
                            ) -> tuple[Principal, WebSession] | None:
    """The principal of the request's session, its CSRF token checked on a state-changing
    request (the token is what a cross-site form cannot know)."""
    session = await current_session(request, sessions)
    if session is None:
        return None
    await require_csrf(request, session)
    return Principal(kind, session.subject, session.role, "session"), session


def _safe_next(target: str, prefix: str) -> str:
    if target.startswith(prefix + "/") and not target.startswith("//") and "\\" not in target \
            and not target.startswith(prefix + "/login"):
        return target
    return prefix + "/"


def add_signin_routes(app: web.Application, *, prefix: str, sessions: SessionStore,
                      check_password: CheckPassword, signed_in_door: Door) -> None:

    async def show(request: web.Request, *, error: str = "", name: str = "",
                   status: int = 200) -> web.Response:
        response = web.Response()
        token = signin_token(request, response)
        page_ = await render(request, "signin.html",
                             {"signin_csrf": token, "error": error, "name": name,
                              "next": _safe_next(request.query.get("next", ""), prefix),
                              "action": prefix + "/login"}, status=status)
        for cookie in response.cookies.values():
            page_.cookies[cookie.key] = cookie
        return page_

    @page(PUBLIC)
    async def signin_form(request: web.Request) -> web.Response:
        return await show(request)

    @page(PUBLIC)
    async def signin(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        check_signin_token(request, form.get(CSRF_FIELD, ""))
        name = field(form, "name")
        try:
            subject, role = await check_password(name, form.get("password", ""))
        except Unauthenticated as exc:
            log.warning("sign-in to %s refused for %r from %s: %s", prefix, name[:64],
                        request.remote, exc.code)
            message = exc.message_ja if request_language(request) == "ja" and exc.message_ja \
                else exc.message
            return await show(request, error=message, name=name, status=401)
        session_id, _ = await sessions.create(subject, role, f"{request.remote or '?'}")
        log.info("%s signed in to %s from %s", subject, prefix, request.remote)
        response = web.HTTPSeeOther(_safe_next(form.get("next", ""), prefix))
        sessions.set_cookie(request, response, session_id)
        raise response

    @page(signed_in_door)
    async def signout(request: web.Request) -> web.StreamResponse:
        await sessions.end(sessions.id_of(request))
        response = web.HTTPSeeOther(prefix + "/login")
        sessions.clear_cookie(response)
        raise response

    app.router.add_get(prefix + "/login", signin_form)
    app.router.add_post(prefix + "/login", signin)
    app.router.add_post(prefix + "/logout", signout)
