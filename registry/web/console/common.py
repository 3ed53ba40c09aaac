"""What every console page shares: the services it calls, the actor of a change, the
success message after a change, names next to codes, and a page's standard values.

A change is a POST form that ends in a 303 back to a page with ``?done=<key>``: the message
travels in the URL, not in server memory, so any replica of the registry can show it. Only the
keys in ``DONE`` are shown; any other value of ``done`` is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from mesh.errors import AreameshError
from mesh.http_auth import ADMIN, principal_of
from mesh.ids import LOCAL_GOVERNMENT_TYPES, ParticipantType
from mesh.web.i18n import request_language
from mesh.web.render import render, wants_html
from registry.config import RegistryConfig
from registry.identity.normalise import PREFECTURES
from registry.operators.admin import AdminService
from registry.operators.audit_log import Actor
from registry.operators.credentials import http_actor
from registry.store import Participant, RegistryStore


@dataclass(frozen=True)
class Console:
    admin: AdminService
    store: RegistryStore
    config: RegistryConfig


CONSOLE = web.AppKey("console", Console)

MAX_REASON = 500          # as the JSON admin API's text fields

DONE = frozenset({"participant_added", "certified", "suspended", "reinstated", "hosting_added",
                  "hosting_removed", "token_revoked", "node_revoked", "criteria_saved",
                  "billing_run"}
                 | {"kpi_defined", "kpi_value_saved", "kpi_imported"}     # registry/web/console/kpi.py
                 | {"federation_added", "federation_removed"})  # registry/web/console/federation.py

# (message key, path) of the console's own menu
MENU = [("console.nav.overview", "/admin/"), ("console.nav.participants", "/admin/participants"),
        ("console.nav.tokens", "/admin/tokens"), ("console.nav.nodes", "/admin/nodes"),
        ("console.nav.usage", "/admin/usage"), ("console.nav.metering", "/admin/metering"),
        ("console.nav.billing", "/admin/billing"), ("console.nav.datamap", "/admin/datamap"),
        ("console.nav.kpi", "/admin/kpi"), ("console.nav.federation", "/admin/federation"),
        ("console.nav.criteria", "/admin/criteria"),
        ("console.nav.revocation", "/admin/revocation"), ("console.nav.audit", "/admin/audit")]


def console(request: web.Request) -> Console:
    return request.app[CONSOLE]


def actor(request: web.Request) -> Actor:
    """The audit log's actor: the signed-in operator, as the JSON admin API names it."""
    return http_actor(request, principal_of(request))


def can_change(request: web.Request) -> bool:
    return principal_of(request).role == ADMIN


def q(part: str) -> str:
    """One path segment, quoted."""
    return quote(part, safe="")


def done(path: str, key: str, **query: str) -> web.HTTPSeeOther:
    """The 303 back to ``path`` that shows the success message ``key``."""
    assert key in DONE, key
    return web.HTTPSeeOther(f"{path}?{urlencode({**query, 'done': key})}")


def message_of(request: web.Request, exc: AreameshError) -> str:
    """An error's message in the reader's language."""
    return exc.message_ja if request_language(request) == "ja" and exc.message_ja else exc.message


def html_or_raise(request: web.Request, exc: AreameshError) -> None:
    """A form's refusal is shown on the form for browsers; API clients get the JSON error."""
    if not wants_html(request):
        raise exc


def prefecture_of(pid: str, kind: str) -> str:
    """The prefecture a 全国地方公共団体コード names (its first two digits), else ''."""
    try:
        local = ParticipantType(kind) in LOCAL_GOVERNMENT_TYPES
    except ValueError:
        return ""
    if local and len(pid) == 6 and pid[:2].isdigit() and 1 <= int(pid[:2]) <= 47:
        return PREFECTURES[int(pid[:2]) - 1]
    return ""


def place(p: Participant) -> str:
    """The prefecture beside a municipality's name (姫路市 → 兵庫県); '' for a prefecture itself
    or a company."""
    pref = prefecture_of(p.id, p.type)
    return "" if pref == p.name else pref


async def names(store: RegistryStore) -> dict[str, Participant]:
    return {p.id: p for p in await store.participants()}


async def show(request: web.Request, template: str, values: Mapping[str, Any] | None = None,
               *, status: int = 200) -> web.Response:
    """Render a console page with the menu, the operator's rights and the success message."""
    key = request.query.get("done", "")
    return await render(request, template, {
        "menu": MENU, "can_change": can_change(request), "place": place,
        "heartbeat": console(request).config.heartbeat_interval,
        "done": key if key in DONE else "", **(values or {})}, status=status)
