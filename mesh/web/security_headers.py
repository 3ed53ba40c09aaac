"""Security headers on every response of a server that serves pages.

The Content-Security-Policy allows scripts, styles and images from the server itself only: no
inline script or style can run, so text a user typed that slipped through escaping still could
not execute. Pages cannot be framed (clickjacking), responses are never sniffed into another
type, and the Referer never leaves the site (query strings carry search words).
"""

from __future__ import annotations

from aiohttp import web

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith("/admin") or request.path.startswith("/portal"):
        response.headers.setdefault("Cache-Control", "no-store")
