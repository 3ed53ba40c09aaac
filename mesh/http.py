"""aiohttp pieces every node's HTTP side shares: JSON errors, /metrics, site start-up."""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mesh import egress
from mesh.config import parse_hostport
from mesh.errors import AreameshError, Unavailable
from mesh.http_auth import PUBLIC, door

log = logging.getLogger("areamesh.mesh.http")


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Every error leaves as ``{"error": {"code", "message", ...}}`` with a 4xx/5xx status."""
    try:
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
        return web.json_response({"error": {"code": exc.reason.lower().replace(" ", "_"),
                                            "message": exc.reason}}, status=exc.status,
                                 headers=headers)
    except Exception:
        ref = egress.new_reference()
        log.exception("HTTP %s %s failed [ref %s]", request.method, request.path, ref)
        en, ja = egress.internal_message(ref)
        return web.json_response({"error": {"code": "internal", "message": en, "message_ja": ja}},
                                 status=500)


@door(PUBLIC)  # counts and latencies per gRPC method only: no personal data, no secrets
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def start_site(app: web.Application, listen: str) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``listen`` (port 0 = any free port); return the runner and bound port."""
    host, port = parse_hostport(listen, what="HTTP listen address")
    # Long search strings (10 kB of Japanese is ~90 kB URL-encoded) must get an answer.
    runner = web.AppRunner(app, access_log=None, max_line_size=128 * 1024,
                           max_field_size=16 * 1024)
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
