"""Handlers of ``/admin/catalog/``: the registry's catalog as this node sees it over mTLS.

Search and the dataset's page ask the node's ``RegistryClient`` (never registry code). The
request form runs ``connector.contracts.negotiation.request_contract``, the code of ``areamesh
connector contract request``, and sends the browser to the agreement's page, which says
FINALIZED or, for a refusal, which constraint failed on which claim. Contracts are made in this
node's participant's name, so a hosted tenant's account may look but not request.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from aiohttp import web

from connector.contracts.negotiation import MAX_PURPOSE, request_contract
from connector.web.agreements.routes import NODE_KEY, can_change, page_number, scope_of
from connector.web.datasets.standards import view as standard_view
from mesh.errors import AreameshError, InvalidRequest, PermissionDenied
from mesh.http_auth import NODE_ADMIN, NODE_READ
from mesh.policy_text import describe_offer
from mesh.web.forms import field, read_form
from mesh.web.i18n import request_language
from mesh.web.render import page, render

PER_PAGE = 20
MAX_QUERY = 200
FILTERS = ("theme", "publisher", "personal")


def node_of(request: web.Request) -> Any:
    return request.app[NODE_KEY]


def may_request(request: web.Request) -> bool:
    """Only an admin of the whole node (or of this node's own participant) makes contracts."""
    scope = scope_of(request)
    return can_change(request) and scope in ("", node_of(request).state.participant_id)


def _text(value: Any, lang: str) -> str:
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("ja") or next(iter(value.values()), ""))
    return "" if value is None else str(value)


def dataset_view(record: Any, lang: str) -> dict[str, Any]:
    """A ``DatasetRecord`` for the templates: its published description and who serves it."""
    doc = json.loads(record.dataset_json)
    return {"id": record.id, "publisher_id": record.publisher_id,
            "publisher_name": record.publisher_name, "version": record.version,
            "served_by": record.served_by, "doc": doc, "title": _text(doc.get("title"), lang),
            "description": _text(doc.get("description"), lang),
            "modified": record.modified.ToDatetime().isoformat() + "+00:00"
            if record.HasField("modified") else ""}


@page(NODE_READ)
async def search(request: web.Request) -> web.Response:
    node = node_of(request)
    text = request.query.get("q", "").strip()
    filters = {k: request.query.get(k, "").strip() for k in FILTERS}
    if len(text) > MAX_QUERY or any(len(v) > MAX_QUERY for v in filters.values()):
        raise InvalidRequest("the search is too long", code="invalid_query",
                             message_ja="検索語が長すぎます")
    number = page_number(request)
    reply = await node.registry.search_datasets(text, page=number, per_page=PER_PAGE,
                                                **{k: v for k, v in filters.items() if v})
    lang = request_language(request)
    return await render(request, "catalog/search.html", {
        "publishers": {r.publisher_id: r.publisher_name for r in reply.results},
        "q": text, "filters": filters, "total": reply.total, "page": number,
        "pages": max(1, -(-reply.total // PER_PAGE)),
        "results": [dataset_view(r, lang) for r in reply.results],
        "facets": {f.name: [(c.value, c.count) for c in f.counts] for f in reply.facets}})


def offers_of(doc: dict[str, Any], names: dict[str, str]) -> list[dict[str, Any]]:
    """Each offer with its policy as written and in plain words (``mesh.policy_text``)."""
    out = []
    for offer in doc.get("offers") or []:
        if not isinstance(offer, dict):
            continue
        policy = offer.get("policy") if isinstance(offer.get("policy"), dict) else {}
        text = describe_offer(policy, str(doc.get("publisher", "")), names)
        out.append({"id": str(offer.get("id", "")), "policy": policy,
                    "text": {"ja": text.ja, "en": text.en}})
    return out


async def show_dataset(request: web.Request, *, form: dict[str, str] | None = None,
                       error: str = "", status: int = 200) -> web.Response:
    node = node_of(request)
    record = await node.registry.get_dataset(request.match_info["id"])
    view = dataset_view(record, request_language(request))
    offers = offers_of(view["doc"], {record.publisher_id: record.publisher_name})
    return await render(request, "catalog/dataset.html", {
        "ds": view, "offers": offers, "may_request": may_request(request),
        "standard": standard_view(view["doc"]),
        "form": form or {"offer": offers[0]["id"] if offers else "", "purpose": ""},
        "error": error, "max_purpose": MAX_PURPOSE}, status=status)


@page(NODE_READ)
async def dataset(request: web.Request) -> web.Response:
    return await show_dataset(request)


@page(NODE_ADMIN)
async def request_agreement(request: web.Request) -> web.Response:
    if not may_request(request):
        raise PermissionDenied("an account limited to a hosted tenant cannot make contracts in "
                               "this node's name", code="tenant_scope",
                               message_ja="共同利用団体のアカウントでは、このノードの名義で契約を"
                                          "申し込めません")
    form = await read_form(request)
    values = {"offer": field(form, "offer"), "purpose": field(form, "purpose")}
    dataset_id = request.match_info["id"]
    try:
        if not values["purpose"] or len(values["purpose"]) > MAX_PURPOSE:
            raise InvalidRequest(f"purpose must be 1-{MAX_PURPOSE} characters",
                                 code="invalid_purpose",
                                 message_ja=f"利用目的を{MAX_PURPOSE}文字以内で入力してください")
        row = await request_contract(node_of(request).config.data_dir, dataset_id,
                                     values["offer"], values["purpose"])
    except AreameshError as exc:
        lang = request_language(request)
        message = exc.message_ja if lang == "ja" and exc.message_ja else exc.message
        return await show_dataset(request, form=values, error=message, status=exc.http_status)
    raise web.HTTPSeeOther(f"/admin/agreements/{quote(row.id, safe='')}?done=requested")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/catalog/", search)
    app.router.add_get("/admin/catalog/{id}", dataset)
    app.router.add_post("/admin/catalog/{id}/request", request_agreement)
