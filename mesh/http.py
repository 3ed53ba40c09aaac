"""aiohttp pieces every node's HTTP side shares: JSON errors, /metrics, site start-up.

No client input becomes a 5xx or holds the server: the error middleware checks the request's
text (``mesh/http_input.py``) and answers every client mistake with a 4xx JSON error body;
requests the HTTP parser itself refuses (broken framing, oversized headers) get the same JSON
shape; a client has ``HEADER_SECONDS`` to send its request line and headers.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mesh import egress
from mesh.config import parse_hostport
from mesh.errors import AreameshError, Unavailable
from mesh.http_auth import PUBLIC, door
from mesh.http_input import HEADER_SECONDS, check_request_text

log = logging.getLogger("areamesh.mesh.http")

# Raised while decoding or converting what a client sent (a handler that calls
# ``request.json()`` itself, a date or number out of range): a client mistake, never a 500.
CLIENT_INPUT_ERRORS = (json.JSONDecodeError, UnicodeError, RecursionError, OverflowError)


def error_body(status: int, code: str | None = None, message: str | None = None) -> dict:
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return {"error": {"code": code or phrase.lower().replace(" ", "_").replace("-", "_"),
                      "message": message or phrase}}


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {"code", "message", ...}}`` with a 4xx/5xx status;
    a 5xx only for the server's own faults."""
    try:
        check_request_text(request)
        return await handler(request)
    except AreameshError as exc:     # what leaves is scrubbed of local paths and hosts
        ref = egress.new_reference()
        egress.log_refusal(log, f"HTTP {request.method} {request.path}", exc, ref)
        return web.json_response(egress.public_error(exc, ref).to_json(), status=exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items()
                   if k.lower() not in ("content-type", "content-length")}  # keeps Allow on 405
        return web.json_response(error_body(exc.status, message=exc.reason),
                                 status=exc.status, headers=headers)
    except ConnectionResetError:
        log.info("HTTP %s %s: the client closed the connection", request.method, request.path)
        return web.json_response(error_body(400, "client_disconnected"), status=400)
    except CLIENT_INPUT_ERRORS as exc:
        log.warning("HTTP %s %s refused: %s: %s", request.method, request.path,
                    type(exc).__name__, str(exc)[:200], exc_info=True)
        return web.json_response(error_body(400, "invalid_request",
                                            f"the request could not be read: "
                                            f"{type(exc).__name__}"), status=400)
    except Exception:
        ref = egress.new_reference()
        log.exception("HTTP %s %s failed [ref %s]", request.method, request.path, ref)
        en, ja = egress.internal_message(ref)
        return web.json_response({"error": {"code": "internal", "message": en, "message_ja": ja}},
                                 status=500)


def app_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route ``app`` serves, sub-apps included: what the HTTP
    fuzz test drives, so a route added later is fuzzed without anyone listing it."""
    routes = []
    for route in app.router.routes():
        info = route.get_info()
        path = info.get("formatter") or info.get("path") or info.get("prefix")
        app_ = info.get("app")
        if app_ is not None:
            routes += [(m, (path or "").rstrip("/") + p) for m, p in app_routes(app_)]
        elif path and route.method != "HEAD":
            routes.append((route.method, path))
    return sorted(set(routes))


@door(PUBLIC)  # counts and latencies per gRPC method only: no personal data, no secrets
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _JsonErrorRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering requests its parser refuses (bad framing,
    invalid characters, oversized headers) and HTTP errors raised before the middlewares run
    with the mesh's JSON error body, logged at warning level instead of a traceback per bad
    request."""

    __slots__ = ()

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        refused = None
        if status >= 500:      # failed before the middlewares ran, e.g. on an Expect header
            try:
                check_request_text(request)
            except AreameshError as exc_:
                refused = exc_
        if refused is not None:
            log.warning("HTTP request from %s refused: %s", request.remote, refused.message)
            resp = web.json_response(refused.to_json(), status=refused.http_status)
        else:
            first_line = (message or "").splitlines()[0][:500] if message else None
            if status >= 500:
                log.error("HTTP request from %s failed", request.remote, exc_info=exc)
                first_line = None
            else:
                log.warning("HTTP request from %s refused (%d): %s", request.remote, status,
                            first_line or "")
            resp = web.json_response(error_body(status, "bad_http_request" if status == 400
                                                else None, first_line), status=status)
        resp.force_close()
        return resp

    async def finish_response(self, request, resp: web.StreamResponse, start_time: float | None
                              ) -> tuple[web.StreamResponse, bool]:
        # An HTTP error raised outside the middlewares (aiohttp's Expect handling) in JSON too.
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            headers = {k: v for k, v in resp.headers.items()
                       if k.lower() not in ("content-type", "content-length")}
            resp = web.json_response(error_body(resp.status, message=resp.reason),
                                     status=resp.status, headers=headers)
        return await super().finish_response(request, resp, start_time)


class _JsonErrorServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _JsonErrorRequestHandler(self, loop=self._loop, **self._kwargs)


class _AppRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer   # same state, our connection handler
        return server


async def start_site(app: web.Application, listen: str) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``listen`` (port 0 = any free port); return the runner and bound port."""
    host, port = parse_hostport(listen, what="HTTP listen address")
    # Long search strings (10 kB of Japanese is ~90 kB URL-encoded) must get an answer.
    # keepalive_timeout also bounds how long a connection may take to send a request's line
    # and headers (aiohttp arms it when the connection opens and after each response).
    runner = _AppRunner(app, access_log=None, max_line_size=128 * 1024,
                        max_field_size=16 * 1024, keepalive_timeout=HEADER_SECONDS)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise Unavailable(f"cannot bind HTTP to {listen}: {exc}",
                          message_ja=f"HTTP を {listen} で待ち受けできません",
                          code="listen_failed", details={"address": listen}) from exc
    bound = site._server.sockets[0].getsockname()[1]
    log.info("HTTP listening on http://%s:%d", host, bound)
    return runner, bound
