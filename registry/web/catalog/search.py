"""The search page at ``/``: the API's Japanese search (``CatalogService.search`` with the
query ``search_query`` reads), its facets as links that narrow, sort and pages. A client that
prefers JSON gets exactly what GET /api/v1/datasets answers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mesh.http_auth import PUBLIC
from mesh.web.i18n import request_language
from mesh.web.render import page, render, wants_json, with_query
from registry.catalog.query import search_body, search_query
from registry.catalog.search_index import FACETS, SearchQuery, SearchResult
from registry.federation.search import FEDERATED_CATALOG, wants_federated
from registry.web.catalog.common import (
    facet_label,
    json_page,
    names_of,
    public_participants,
    services,
    standard_of,
    text_in,
    theme_slug,
    translator,
)

FACET_PARAMS = {"theme": "theme", "publisher": "publisher", "prefecture": "prefecture",
                "standard_type": "standard_type", "personal": "personal",
                "classification": "classification"}
FACET_ORDER = ("theme", "publisher", "prefecture", "standard_type", "classification", "personal")
FACET_SHOWN = 12                      # values per facet on the page, the most frequent first
SORTS = ("relevance", "title", "modified")
assert set(FACET_ORDER) == set(FACETS)


def _active(query: SearchQuery, facet: str) -> str | None:
    value = getattr(query, facet)
    if facet == "personal" and value is not None:
        return "true" if value else "false"
    return value


def facet_blocks(request: web.Request, query: SearchQuery, result: SearchResult,
                 names: dict[str, str], t) -> list[dict[str, Any]]:
    """Each facet with its values as narrowing links, the active value first with a link
    that removes it."""
    lang = request_language(request)
    blocks = []
    for facet in FACET_ORDER:
        param = FACET_PARAMS[facet]
        active = _active(query, facet)
        counts = result.facets.get(facet, {})
        values = [{"value": v, "count": n, "label": facet_label(t, facet, v, names, lang),
                   "url": with_query(request, **{param: v, "page": None}), "active": v == active}
                  for v, n in list(counts.items())[:FACET_SHOWN]]
        if not values and active is None:
            continue
        blocks.append({"name": facet, "param": param, "choices": values,
                       "hidden": max(0, len(counts) - FACET_SHOWN),
                       "active": active,
                       "active_label": facet_label(t, facet, active, names, lang) if active else "",
                       "remove_url": with_query(request, **{param: None, "page": None})})
    return blocks


def result_rows(records, names: dict[str, str], lang: str) -> list[dict[str, Any]]:
    return [{"id": r.id, "title": text_in(r.doc["title"], lang),
             "description": text_in(r.doc["description"], lang),
             "publisher_id": r.publisher_id, "publisher": r.publisher_name,
             "themes": [(th, theme_slug(th)) for th in r.doc["themes"]],
             "standard": standard_of(r.doc),
             "classification": r.doc.get("classification", "non_personal"),
             "access": r.doc.get("access", "open"), "modified": r.modified,
             # federated search (registry/federation/search.py): the mesh of each result; a
             # federated mesh's dataset has no page here
             "mesh_id": getattr(r, "mesh_id", ""), "federated": getattr(r, "federated", False)}
            for r in records]


@page(PUBLIC)
async def search_page(request: web.Request) -> web.Response:
    query = search_query(request.query)
    pages = services(request)
    federated = wants_federated(request.query) and FEDERATED_CATALOG in request.app
    extra: dict[str, Any] = {}
    if federated:
        answer = await request.app[FEDERATED_CATALOG].search(query)
        result, records = answer.result, answer.records
        extra = {"meshes": answer.meshes, "unreachable": answer.unreachable}
    else:
        result, records = await pages.catalog.search(query)
    if wants_json(request):
        return json_page({**search_body(query, result, records), **extra})
    names = names_of(await public_participants(pages.store))
    lang = request_language(request)
    total_pages = min(-(-result.total // query.per_page), 100_000)
    return await render(request, "catalog/search.html", {
        "query": query, "total": result.total, "total_pages": total_pages,
        "approximate": result.approximate,
        "results": result_rows(records, names, lang),
        "facet_blocks": facet_blocks(request, query, result, names, translator(request)),
        "sorts": SORTS, "filters": {p: request.query.get(p, "") for p in FACET_PARAMS.values()
                                    if request.query.get(p)},
        "federation_offered": FEDERATED_CATALOG in request.app, "federated": federated,
        "unreachable": extra.get("unreachable", [])})

