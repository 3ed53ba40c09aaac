"""The developer portal at ``/developers/`` (開発者ポータル): find the APIs and try them.

- ``/developers/``: the index of what can be called (REST, CKAN-compatible, gRPC) and how.
- ``/developers/api/registry`` and ``/developers/api/connector``: the OpenAPI documents as
  pages. The registry's page shows the doors its router really enforces and has a "try it"
  form for each GET operation; ``/developers/try`` turns such a form into the real URL (path
  parameters filled in, empty fields left out) so it works without JavaScript.
- ``/developers/grpc``: services and messages from the generated descriptors.
- ``/developers/adapters``: the adapter plugin quick start (Markdown in ``content/``).

The registry never imports connector code (tests/test_layering.py): the connector's document
and route doors are snapshots in this package that tests/test_developer_portal.py compares
with the connector's own.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web

from mesh.errors import InvalidRequest
from mesh.http_auth import PUBLIC, route_doors
from mesh.web.i18n import request_language
from mesh.web.render import page, render
from registry.openapi import OPENAPI
from registry.web.developers.content import page_html
from registry.web.developers.grpc_view import PACKAGE, Service, grpc_contract, short_name, type_anchor
from registry.web.developers.openapi_view import ApiDoc, api_doc, schema_anchor

HERE = Path(__file__).parent
CONNECTOR_OPENAPI = HERE.parent / "static" / "developers.connector-openapi.json"
CONNECTOR_DOORS = HERE / "connector-doors.json"
SERVER_ORDER = ("registry", "connector", None)


@cache
def connector_doc() -> ApiDoc:
    doors = json.loads(CONNECTOR_DOORS.read_text(encoding="utf-8"))
    return api_doc(json.loads(CONNECTOR_OPENAPI.read_text(encoding="utf-8")),
                   {tuple(key.split(" ", 1)): door for key, door in doors.items()})


def registry_doc(app: web.Application) -> ApiDoc:
    """The registry's document with the doors of the app that serves it."""
    return _registry_doc(tuple(sorted(((m, p), d.name) for m, p, d in route_doors(app)
                                      if d is not None)))


@cache
def _registry_doc(doors: tuple[tuple[tuple[str, str], str], ...]) -> ApiDoc:
    return api_doc(OPENAPI, dict(doors))       # the same for every request: built once


def services_in_order() -> list[Service]:
    """The registry's services first, then the connector's; each server's main one first."""
    return sorted(grpc_contract().services,
                  key=lambda s: (SERVER_ORDER.index(s.served_by), -len(s.methods), s.name))


EXAMPLE_QUERY = "防災"     # a search word the demo catalog answers (data, not page text)


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


@page(PUBLIC)
async def developers_index(request: web.Request) -> web.Response:
    return await render(request, "developers/index.html", {
        "registry": registry_doc(request.app), "connector": connector_doc(),
        "services": services_in_order(), "base_url": _base_url(request),
        "connector_json": "developers.connector-openapi.json",
        "example": EXAMPLE_QUERY, "example_q": quote(EXAMPLE_QUERY)})


@page(PUBLIC)
async def registry_api(request: web.Request) -> web.Response:
    return await render(request, "developers/api.html", {
        "doc": registry_doc(request.app), "server": "registry", "try_it": True,
        "json_url": "/openapi.json", "schema_anchor": schema_anchor})


@page(PUBLIC)
async def connector_api(request: web.Request) -> web.Response:
    site_static = "developers.connector-openapi.json"
    return await render(request, "developers/api.html", {
        "doc": connector_doc(), "server": "connector", "try_it": False,
        "json_url": None, "json_static": site_static, "schema_anchor": schema_anchor})


@page(PUBLIC)
async def try_operation(request: web.Request) -> web.Response:
    """GET /developers/try?operation=/api/v1/datasets/{id}&id=…: a "try it" form sent without
    JavaScript. Answers 303 to the registry's own URL for that GET operation."""
    raise web.HTTPSeeOther(try_url(request.query.get("operation", ""), request.query))


def try_url(template: str, values) -> str:
    """The same-origin URL of the registry's GET operation ``template`` with ``values``
    filled in: path parameters percent-encoded (never a ``/``), empty fields dropped, fields
    the operation does not declare ignored."""
    item = OPENAPI["paths"].get(template)
    if not isinstance(item, dict) or "get" not in item:
        raise InvalidRequest("operation must name one of the registry API's GET operations",
                             code="unknown_operation",
                             message_ja="operation にはレジストリ API の GET 操作を指定してください")
    try:
        return _fill(template, [*item.get("parameters", []), *item["get"].get("parameters", [])],
                     values)
    except UnicodeError:      # a lone surrogate from a broken percent escape
        raise InvalidRequest("a parameter is not valid text", code="bad_parameter",
                             message_ja="パラメータに文字として正しくない値があります") from None


def _fill(template: str, params: list[dict], values) -> str:
    path, query = template, []
    for p in params:
        value = values.get(p["name"], "")
        if p["in"] == "path":
            if not value:
                raise InvalidRequest(f"path parameter {p['name']!r} is required",
                                     code="path_parameter_required",
                                     message_ja=f"パスパラメータ {p['name']} を入力してください",
                                     details={"parameter": p["name"]})
            path = path.replace("{" + p["name"] + "}", quote(value, safe=""))
        elif p["in"] == "query" and value:
            query.append((p["name"], value))
    return path + ("?" + urlencode(query) if query else "")


@page(PUBLIC)
async def grpc_page(request: web.Request) -> web.Response:
    contract = grpc_contract()
    return await render(request, "developers/grpc.html", {
        "services": services_in_order(), "messages": contract.messages, "enums": contract.enums,
        "known": contract.known, "type_anchor": type_anchor, "short": short_name,
        "package": PACKAGE})


@page(PUBLIC)
async def adapters_page(request: web.Request) -> web.Response:
    return await render(request, "developers/adapters.html", {
        "body": page_html("adapters", request_language(request))})


def add_developer_pages(app: web.Application) -> None:
    app.router.add_get("/developers/", developers_index)
    app.router.add_get("/developers/api/registry", registry_api)
    app.router.add_get("/developers/api/connector", connector_api)
    app.router.add_get("/developers/try", try_operation)
    app.router.add_get("/developers/grpc", grpc_page)
    app.router.add_get("/developers/adapters", adapters_page)
