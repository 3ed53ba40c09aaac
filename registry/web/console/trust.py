"""The certification criteria (認定基準; read by everyone on /api/v1/participants, edited by an
admin here) and the state of the revocation list the registry publishes on /api/v1/crl."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from cryptography import x509

from mesh.errors import AreameshError
from mesh.http_auth import OPERATOR_ADMIN, OPERATOR_READ
from mesh.web.forms import read_form
from mesh.web.render import page
from registry.web.console.common import actor, console, done, html_or_raise, message_of, show


@dataclass(frozen=True)
class CrlState:
    number: int
    this_update: datetime
    next_update: datetime
    revoked: int


async def crl_state(request: web.Request) -> CrlState:
    """The list /api/v1/crl serves now (signed anew when it is due, as that route does)."""
    c = console(request)
    crl = await c.store.current_crl(c.admin.ca, c.config.crl_validity)
    revoked = len(x509.load_der_x509_crl(crl.crl_der))
    return CrlState(crl.number, crl.this_update, crl.next_update, revoked)


@page(OPERATOR_READ)
async def criteria(request: web.Request) -> web.Response:
    text = await console(request).store.meta("certification_criteria") or ""
    return await show(request, "console/criteria.html", {"text": text, "error": ""})


@page(OPERATOR_ADMIN)
async def save_criteria(request: web.Request) -> web.Response:
    text = (await read_form(request)).get("criteria", "").replace("\r\n", "\n")
    try:
        await console(request).admin.set_criteria(actor(request), text)
    except AreameshError as exc:
        html_or_raise(request, exc)
        return await show(request, "console/criteria.html",
                          {"text": text, "error": message_of(request, exc)}, status=exc.http_status)
    raise done("/admin/criteria", "criteria_saved")


@page(OPERATOR_READ)
async def revocation(request: web.Request) -> web.Response:
    c = console(request)
    return await show(request, "console/revocation.html", {
        "crl": await crl_state(request), "validity": c.config.crl_validity})


def add_trust_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/admin/criteria", criteria)
    r.add_post("/admin/criteria", save_criteria)
    r.add_get("/admin/revocation", revocation)
