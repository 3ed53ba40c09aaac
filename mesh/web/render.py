"""Server-rendered pages: the Jinja environment, the context every page gets, ``@page``.

A server calls ``setup_pages`` once with its own templates, static files and messages; they
are layered over the shared ones in this folder (layout, sign-in, error page, site.css). A
handler marked ``@page(DOOR)`` is a page: its door is enforced like any route's, and its
errors come back as an HTML page in the reader's language instead of JSON (``page_errors``).
An unauthenticated request for a console page is sent to the console's sign-in page.

Templates autoescape; a page holds no sentence of its own, only catalog keys (``t("key")``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from mesh import egress
from mesh.errors import AreameshError
from mesh.http_auth import PRINCIPAL, Door, Principal, door
from mesh.web.i18n import LANG_COOKIE, LANGUAGES, MessageCatalog, request_language
from mesh.web.security_headers import add_security_headers
from mesh.web.static import STATIC, STATIC_PREFIX, StaticFiles, static_file

log = logging.getLogger("areamesh.web")

HERE = Path(__file__).parent
JST = ZoneInfo("Asia/Tokyo")
H = TypeVar("H", bound=Callable[..., Any])


def page(d: Door) -> Callable[[H], H]:
    """Declare a handler a page behind door ``d``."""

    def mark(handler: H) -> H:
        handler.page = True  # type: ignore[attr-defined]
        return door(d)(handler)

    return mark


def is_page(handler: Any) -> bool:
    return bool(getattr(handler, "page", False))


@dataclass
class Site:
    """What a server's pages share: messages, static files, its sign-in and its navigation."""

    messages: MessageCatalog
    static: StaticFiles
    brand_key: str                                   # the site's name in the header
    nav: list[tuple[str, str]] = field(default_factory=list)   # (message key, url)
    signin_path: str | None = None                   # where console pages send strangers
    signed_in: Callable[[web.Request], Awaitable[Principal | None]] | None = None
    csrf_of: Callable[[web.Request], Awaitable[str]] | None = None
    sections: dict[str, Site] = field(default_factory=dict)   # path prefix → another face


SITE = web.AppKey("site", Site)


def site_of(request: web.Request) -> Site:
    """The site a path belongs to: a section (the connector's resident portal under /portal/,
    with its own name, menu and sign-in) or the app's main site."""
    site = request.app[SITE]
    for prefix, section in site.sections.items():
        if request.path.startswith(prefix):
            return section
    return site


def wants_json(request: web.Request) -> bool:
    """True when the client prefers JSON to HTML (``Accept``; browsers ask for text/html)."""
    accept = request.headers.get("Accept", "")
    html = _position(accept, "text/html")
    json_ = _position(accept, "application/json")
    return json_ is not None and (html is None or json_ < html)


def wants_html(request: web.Request) -> bool:
    """True when the client names text/html before JSON, as browsers do; ``*/*`` clients
    (curl, scripts) get JSON errors."""
    return _position(request.headers.get("Accept", ""), "text/html") is not None \
        and not wants_json(request)


def _position(accept: str, media: str) -> int | None:
    for i, part in enumerate(accept.split(",")[:30]):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() == media and "q=0" not in params.replace(" ", "").split(";")[-1:]:
            return i
    return None


def jst(value: str | datetime | None, with_zone: bool = True) -> str:
    """A time in Japan Standard Time, the zone shown: 2026-12-03 21:17 JST."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        return value.strftime("%Y-%m-%d %H:%M")
    text = value.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return f"{text} JST" if with_zone else text


def number(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"


def setup_pages(app: web.Application, site: Site, templates: Path, static: Path | None = None
                ) -> None:
    """Templates (the server's first, then the shared ones), ``/static/``, security headers."""
    loaders = [jinja2.FileSystemLoader(str(templates)), jinja2.FileSystemLoader(str(HERE / "templates"))]
    env = aiohttp_jinja2.setup(app, loader=jinja2.ChoiceLoader(loaders), autoescape=True,
                               undefined=jinja2.StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True)
    env.filters["jst"] = jst
    env.filters["number"] = number
    app[SITE] = site
    app[STATIC] = site.static
    app.router.add_get(STATIC_PREFIX + "{path:.+}", static_file)
    app.on_response_prepare.append(add_security_headers)


def current_nav(site: Site, path: str) -> str:
    """The menu entry a path belongs to: the longest menu URL that is the path or a folder of
    it ("/admin/" for "/admin/participants/282014", "/admin/datasets/" for its pages)."""
    best = ""
    for _, url in site.nav:
        if (path == url or (url.endswith("/") and url != "/" and path.startswith(url))) \
                and len(url) > len(best):
            best = url
    return best


def with_query(request: web.Request, **changes: object) -> str:
    """The current URL with some query parameters changed (None removes one)."""
    query = {k: v for k, v in request.query.items()}
    for key, value in changes.items():
        if value is None or value == "":
            query.pop(key, None)
        else:
            query[key] = str(value)
    return request.path + ("?" + urlencode(query) if query else "")


async def context(request: web.Request, values: Mapping[str, Any]) -> dict[str, Any]:
    site = site_of(request)
    lang = request_language(request)
    principal = request.get(PRINCIPAL)
    if principal is None and site.signed_in is not None:
        principal = await site.signed_in(request)
    csrf = await site.csrf_of(request) if site.csrf_of and principal else ""

    def t(key: str, **params: object) -> str:
        return site.messages.text(lang, key, **params)

    return {"lang": lang, "t": t, "static": site.static.url, "principal": principal,
            "current_nav": current_nav(site, request.path),
            "csrf": csrf, "site": site, "request": request, "path": request.path,
            "url_with": lambda **kw: with_query(request, **kw),
            "other_languages": [(code, with_query(request, lang=code))
                                for code in LANGUAGES if code != lang],
            **values}


async def render(request: web.Request, template: str, values: Mapping[str, Any] | None = None,
                 *, status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request,
                                              await context(request, values or {}),
                                              status=status)
    response.headers["Content-Language"] = request_language(request)
    if request.query.get("lang") in LANGUAGES:     # remember an explicit choice
        response.set_cookie(LANG_COOKIE, request.query["lang"], samesite="Lax", path="/",
                            max_age=365 * 86400)
    return response


@web.middleware
async def page_errors(request: web.Request, handler) -> web.StreamResponse:
    """Errors of pages as pages. Sits between ``error_middleware`` and the doors: JSON clients
    and API routes fall through to the JSON errors unchanged."""
    info = request.match_info
    page_route = is_page(info.handler) if info.http_exception is None else \
        not request.path.startswith("/api/")
    if not page_route or not wants_html(request) or SITE not in request.app:
        return await handler(request)
    try:
        return await handler(request)
    except AreameshError as exc:
        site = site_of(request)
        if exc.http_status == 401 and site.signin_path and request.method == "GET":
            raise web.HTTPSeeOther(f"{site.signin_path}?{urlencode({'next': request.path_qs})}") \
                from None
        ref = egress.new_reference()
        egress.log_refusal(log, f"HTTP {request.method} {request.path}", exc, ref)
        public = egress.public_error(exc, ref)
        lang = request_language(request)
        message = (public.message_ja if lang == "ja" and public.message_ja else public.message)
        return await render(request, "error.html",
                            {"status": exc.http_status, "code": public.code, "message": message},
                            status=exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await render(request, "error.html",
                            {"status": exc.status, "code": "", "message": ""}, status=exc.status)
    except Exception:
        ref = egress.new_reference()
        log.exception("HTTP %s %s failed [ref %s]", request.method, request.path, ref)
        en, ja = egress.internal_message(ref)
        return await render(request, "error.html",
                            {"status": 500, "code": "internal",
                             "message": ja if request_language(request) == "ja" else en},
                            status=500)
