"""「同意の管理」: the signed-in resident's consents by service, component, data item and
purpose; grant, change and withdraw, each shown on a confirmation page first; the history.

Every change goes through the consent store (``ConsentStore.grant``/``withdraw``), which keeps
it as evidence (``consent_events``) with the actor ``resident:<id> (portal, OpenID sign-in)``.
A change is a new grant with the same key (dataset, recipient, service, component, purpose):
the store supersedes the old consent. A consent id of another resident is "not found" (404).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from connector.consent.cli import _expiry, known_in
from connector.portal_api import datasets_holding
from connector.web.portal.data import participant_names, resident_of
from mesh.errors import InvalidRequest, NotFound
from mesh.http_auth import RESIDENT_SELF
from mesh.web.forms import field, read_form
from mesh.web.render import page, render

if TYPE_CHECKING:
    from connector.app import ConnectorApp
    from connector.consent.store import Consent

KEY_FIELDS = ("dataset", "participant", "service", "component", "purpose")
DONE = ("granted", "withdrawn")


def actor(resident: str) -> str:
    return f"resident:{resident} (portal, OpenID sign-in)"


def _grant_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The grant as the form states it (the resident is never read from a form)."""
    values: dict[str, Any] = {k: field(form, k)[:200] for k in (*KEY_FIELDS, "expires")}
    values["dataset"] = values["dataset"] or "*"
    items = sorted({v.strip() for k, v in form.items() if k.startswith("item-") and v.strip()})
    values["items"] = items or None
    errors = {k: "portal.consents.error.required" for k in ("participant", "purpose")
              if not values[k]}
    if values["component"] and not values["service"]:
        errors["component"] = "portal.consents.error.component_without_service"
    if values["expires"]:
        try:
            _expiry(values["expires"])
        except InvalidRequest:
            errors["expires"] = "portal.consents.error.expires"
    values["errors"] = errors
    return values


async def own_consent(node: ConnectorApp, request: web.Request) -> Consent:
    """The consent the URL names, if it is the signed-in resident's; else not found."""
    store, _ = await node.data_plane.personal()
    consent_id = request.match_info["consent_id"]
    try:
        consent = await store.get(consent_id)
    except NotFound:
        consent = None
    if consent is None or consent.resident != resident_of(request):
        raise NotFound(f"no consent {consent_id[:64]!r} of yours", code="unknown_consent",
                       message_ja="指定された同意は見つかりません")
    return consent


def add_routes(app: web.Application, node: ConnectorApp) -> None:
    async def form_page(request: web.Request, values: dict[str, Any], *, change: Consent | None,
                        status: int = 200) -> web.Response:
        held = await datasets_holding(node.config.data_dir, resident_of(request))
        names = await participant_names(request, node)
        fields = dict.fromkeys(f for d in held if values["dataset"] in ("*", d["dataset"])
                               for f in d["fields"])
        return await render(request, "portal/consent_form.html", {
            "values": values, "change": change, "datasets": held, "names": names,
            "fields": list(fields),
            "recipients": sorted((pid, name) for pid, name in names.items()
                                 if pid != node.state.participant_id)}, status=status)

    @page(RESIDENT_SELF)
    async def consents(request: web.Request) -> web.Response:
        store, _ = await node.data_plane.personal()
        resident = resident_of(request)
        found = await store.list(resident=resident)
        events = await store.history(resident)
        done = request.query.get("done", "")
        return await render(request, "portal/consents.html", {
            "consents": found, "events": list(reversed(events)), "by_id": {c.id: c for c in found},
            "names": await participant_names(request, node) if found else {},
            "done": done if done in DONE else ""})

    @page(RESIDENT_SELF)
    async def new(request: web.Request) -> web.Response:
        return await form_page(request, {"dataset": "*", "participant": "", "purpose": "",
                                         "service": "", "component": "", "expires": "",
                                         "items": None, "errors": {}}, change=None)

    @page(RESIDENT_SELF)
    async def change(request: web.Request) -> web.Response:
        c = await own_consent(node, request)
        return await form_page(request, {
            "dataset": c.dataset_id, "participant": c.participant, "purpose": c.purpose,
            "service": c.service_id or "", "component": c.component_id or "",
            "expires": (c.expires_at or "")[:10], "items": list(c.items) if c.items else None,
            "errors": {}}, change=c)

    @page(RESIDENT_SELF)
    async def confirm(request: web.Request) -> web.Response:
        values = _grant_form(await read_form(request))
        if values["errors"]:
            return await form_page(request, values, change=None, status=400)
        return await render(request, "portal/consent_confirm.html", {
            "values": values, "names": await participant_names(request, node)})

    @page(RESIDENT_SELF)
    async def grant(request: web.Request) -> web.StreamResponse:
        values = _grant_form(await read_form(request))
        if values["errors"]:
            return await form_page(request, values, change=None, status=400)
        store, _ = await node.data_plane.personal()
        resident = resident_of(request)
        await store.grant(resident, participant=values["participant"], purpose=values["purpose"],
                          dataset_id=values["dataset"], service_id=values["service"] or None,
                          component_id=values["component"] or None, items=values["items"],
                          expires_at=_expiry(values["expires"] or None),
                          known_subject=known_in(node.config.data_dir, values["dataset"]),
                          actor=actor(resident))
        raise web.HTTPSeeOther("/portal/consents?done=granted")

    @page(RESIDENT_SELF)
    async def withdraw_confirm(request: web.Request) -> web.Response:
        c = await own_consent(node, request)
        return await render(request, "portal/withdraw_confirm.html", {
            "consent": c, "names": await participant_names(request, node)})

    @page(RESIDENT_SELF)
    async def withdraw(request: web.Request) -> web.StreamResponse:
        form = await read_form(request)
        c = await own_consent(node, request)
        store, _ = await node.data_plane.personal()
        resident = resident_of(request)
        await store.withdraw(c.id, resident=resident, reason=field(form, "reason")[:500],
                             actor=actor(resident))
        raise web.HTTPSeeOther("/portal/consents?done=withdrawn")

    app.router.add_get("/portal/consents", consents)
    app.router.add_get("/portal/consents/new", new)
    app.router.add_post("/portal/consents/confirm", confirm)
    app.router.add_post("/portal/consents", grant)
    app.router.add_get("/portal/consents/{consent_id}/change", change)
    app.router.add_get("/portal/consents/{consent_id}/withdraw", withdraw_confirm)
    app.router.add_post("/portal/consents/{consent_id}/withdraw", withdraw)
