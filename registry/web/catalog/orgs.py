"""Organisation pages (a certified participant, its datasets, who hosts whom: the public
register of /api/v1/participants) and theme pages (分野), from the same services."""

from __future__ import annotations

from aiohttp import web

from mesh.datasets import THEMES
from mesh.errors import NotFound
from mesh.http_auth import PUBLIC
from mesh.web.i18n import request_language
from mesh.web.render import page, render
from registry.catalog.query import search_query
from registry.catalog.search_index import SearchQuery
from registry.web.catalog.common import (
    names_of,
    public_participants,
    services,
    theme_of_slug,
    theme_slug,
)
from registry.web.catalog.search import result_rows


def _pages(total: int, per_page: int) -> int:
    return min(-(-total // per_page), 100_000)


@page(PUBLIC)
async def organizations_page(request: web.Request) -> web.Response:
    pages = services(request)
    participants = await public_participants(pages.store)
    counts = {pid: n for pid, _, n in await pages.catalog.publishers()}
    hosts = {pid: await pages.store.host_of(pid) for pid in participants}
    rows = [{"id": p.id, "name": p.name, "type": p.type, "datasets": counts.get(p.id, 0),
             "host": hosts[p.id], "host_name": participants[hosts[p.id]].name
             if hosts[p.id] in participants else hosts[p.id],
             "tenants": [t for t, h in hosts.items() if h == p.id]}
            for p in participants.values()]
    criteria = await pages.store.meta("certification_criteria") or ""
    return await render(request, "catalog/organizations.html",
                        {"organizations": rows, "criteria": criteria})


@page(PUBLIC)
async def organization_page(request: web.Request) -> web.Response:
    pages = services(request)
    pid = request.match_info["id"]
    participants = await public_participants(pages.store)
    org = participants.get(pid)
    if org is None:
        raise NotFound(f"no certified participant {pid!r}",
                       message_ja=f"参加者 {pid} は公開されていません")
    query = search_query({"publisher": pid, "page": request.query.get("page"), "sort": "title"})
    result, records = await pages.catalog.search(query)
    host = await pages.store.host_of(pid)
    tenants = [participants[t] for t in await pages.store.tenants_of(pid) if t in participants]
    names = names_of(participants)
    return await render(request, "catalog/organization.html", {
        "org": org, "host": participants.get(host) if host else None, "host_id": host,
        "tenants": tenants, "total": result.total, "query": query,
        "total_pages": _pages(result.total, query.per_page),
        "results": result_rows(records, names, request_language(request)),
        "themes": [(th, n, theme_slug(th)) for th, n in result.facets.get("theme", {}).items()]})


@page(PUBLIC)
async def themes_page(request: web.Request) -> web.Response:
    result, _ = await services(request).catalog.search(SearchQuery(per_page=1))
    counts = result.facets.get("theme", {})
    rows = [{"theme": th, "slug": theme_slug(th), "count": counts.get(th, 0)} for th in THEMES]
    return await render(request, "catalog/themes.html", {"themes": rows})


@page(PUBLIC)
async def theme_page(request: web.Request) -> web.Response:
    theme = theme_of_slug(request.match_info["id"])
    if theme is None:
        raise NotFound(f"no theme {request.match_info['id']!r}",
                       message_ja="その分野はありません")
    pages = services(request)
    query = search_query({"theme": theme, "page": request.query.get("page"), "sort": "modified"})
    result, records = await pages.catalog.search(query)
    participants = await public_participants(pages.store)
    names = names_of(participants)
    publishers = [(pid, names.get(pid, pid), n)
                  for pid, n in list(result.facets.get("publisher", {}).items())[:20]]
    return await render(request, "catalog/theme.html", {
        "theme": theme, "slug": theme_slug(theme), "total": result.total, "query": query,
        "total_pages": _pages(result.total, query.per_page),
        "results": result_rows(records, names, request_language(request)),
        "publishers": publishers})
