"""CKAN Action API compatible read endpoints under ``/api/3/action/``.

Shaped as CKAN 2.10 answers them (``{"help", "success", "result"}``; errors as
``{"success": false, "error": {"__type", "message"}}`` with CKAN's status codes), so existing
tools such as ``ckanapi.RemoteCKAN`` work unchanged. Mapping: organisation = participant,
group = theme (分野) with an ASCII name, package = dataset, one resource = the connector
endpoint that serves it.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from mesh import egress
from mesh.datasets import THEMES, declared_standard
from mesh.errors import AreameshError, NotFound
from mesh.http_auth import PUBLIC, door
from mesh.http_input import parse_json, read_body
from registry.catalog.datasets import CatalogService, DatasetRecord
from registry.catalog.query import search_query
from registry.federation.search import wants_federated
from registry.store import RegistryStore

log = logging.getLogger("areamesh.registry.ckan")

THEME_SLUGS = {
    "観光": "tourism", "防災": "disaster-prevention", "子育て": "childcare",
    "医療・福祉": "medical-welfare", "交通": "transport", "教育": "education",
    "環境": "environment", "行政": "administration", "産業・経済": "industry-economy",
    "文化・スポーツ": "culture-sports", "都市計画・インフラ": "urban-planning",
    "人口・統計": "population-statistics", "農林水産": "agriculture-forestry-fisheries",
    "健康": "health", "防犯・安全": "safety",
}
SLUG_THEMES = {v: k for k, v in THEME_SLUGS.items()}
assert set(THEME_SLUGS) == set(THEMES)
FACET_NAMES = {"organization": "publisher", "groups": "theme", "prefecture": "prefecture",
               "standard_type": "standard_type", "personal": "personal"}
_FQ_TERM = re.compile(r'(\w+):(?:"([^"]*)"|(\S+))')
CKAN_VERSION = "2.10.4"
INT_PARAMS = {"rows": 1000, "start": 10_000_000, "limit": 1_000_000, "offset": 10_000_000}
LIST_PARAMS = {"facet.field"}        # may be a JSON list in a POST body; every other is a scalar


class CkanError(Exception):
    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def package_dict(record: DatasetRecord, base_url: str) -> dict[str, Any]:
    doc = record.doc
    groups = [{"name": THEME_SLUGS[t], "title": t, "display_name": t} for t in doc["themes"]]
    tags = [{"name": k, "display_name": k, "state": "active"} for k in doc["keywords"]]
    declared = declared_standard(doc) or {}
    extras = {"standard_type": declared.get("layout", ""),
              **({"mesh_id": record.mesh_id} if getattr(record, "mesh_id", "") else {}),
              "standard_edition": declared.get("edition", ""),
              "classification": doc["classification"], "management": doc["management"],
              "update_frequency": doc["update_frequency"], "access": doc["access"],
              "spatial": ",".join(doc["spatial"]), "served_by": record.to_json()["served_by"],
              "title_en": doc["title"].get("en", ""), "version": str(record.version)}
    return {
        "id": record.id, "name": record.id, "type": "dataset", "state": "active",
        "private": False, "title": doc["title"]["ja"], "notes": doc["description"]["ja"],
        "license_id": doc["license"], "license_title": doc["license"],
        "metadata_created": record.created.isoformat(),
        "metadata_modified": record.modified.isoformat(),
        "owner_org": record.publisher_id,
        "organization": {"id": record.publisher_id, "name": record.publisher_id,
                         "title": record.publisher_name, "type": "organization",
                         "is_organization": True, "state": "active"},
        "groups": groups, "tags": tags, "num_tags": len(tags),
        "resources": [{"id": f"{record.id}-stream", "package_id": record.id,
                       "name": f"{doc['title']['ja']}（メッシュ経由）",
                       "format": "areamesh-stream",
                       "url": f"{base_url}/api/v1/datasets/{record.id}",
                       "description": "areamesh コネクタ経由で取得 / fetched through an "
                                      "areamesh connector under a usage contract"}],
        "num_resources": 1,
        "extras": [{"key": k, "value": v} for k, v in extras.items()],
        "version": str(record.version),
    }


def _params(raw: dict[str, Any], names: set[str]) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k in names}


def _scalars(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters with every value a string, as CKAN's validators see them: a JSON
    string, integer or boolean is taken as its text; a list (except ``facet.field``), an
    object or a float is a validation error naming the field. (Any text is a valid search;
    the body's and the request line's limits bound its length.)"""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in LIST_PARAMS and isinstance(value, list):
            out[key] = value
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, str):
            out[key] = value
        elif isinstance(value, int) and abs(value) < 10 ** 30:
            out[key] = str(value)
        elif value is not None:
            raise CkanError(409, "Validation Error", f"{key}: must be a string or an integer")
    return out


def _parse_fq(fq: str) -> dict[str, str]:
    filters: dict[str, str] = {}
    for field, quoted, bare in _FQ_TERM.findall(fq or ""):
        value = quoted if quoted else bare
        if field not in FACET_NAMES:
            raise CkanError(409, "Search Query Error",
                            f"Search error: unknown field {field!r} in fq; use one of "
                            f"{', '.join(FACET_NAMES)}")
        if field == "groups":
            value = SLUG_THEMES.get(value, value)
        filters[FACET_NAMES[field]] = value
    return filters


def _facet_fields(raw: Any) -> list[str]:
    if raw in (None, ""):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise CkanError(409, "Validation Error",
                            'facet.field must be a JSON list such as ["groups"]') from None
    if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
        raise CkanError(409, "Validation Error", "facet.field must be a list of field names")
    return [f for f in raw if f in FACET_NAMES]


def _int(raw: Any, name: str, default: int, high: int) -> int:
    if raw is None:
        return default
    text = str(raw).strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 19):
        raise CkanError(409, "Validation Error", f"{name}: Invalid integer")
    value = int(text)
    if not 0 <= value <= high:
        raise CkanError(409, "Validation Error", f"{name}: must be between 0 and {high}")
    return value


def add_ckan_routes(app: web.Application, catalog: CatalogService, store: RegistryStore,
                    federated=None) -> None:
    """``federated``: a ``registry.federation.search.FederatedCatalog``; with it,
    ``package_search`` takes ``federated=true`` and marks each package with its ``mesh_id``."""
    async def package_search(p: dict[str, Any], base: str) -> dict[str, Any]:
        """Search datasets. Parameters: q (text), fq (organization:, groups:, prefecture:,
        standard_type:, personal: terms), sort (score desc, metadata_modified desc, title asc),
        rows (at most 100 returned), start, facet.field (a JSON list of field names)."""
        rows = _int(p.get("rows"), "rows", 10, 1000)
        start = _int(p.get("start"), "start", 0, 10_000_000)
        filters = _parse_fq(str(p.get("fq") or ""))
        sort = str(p.get("sort") or "score desc")
        order = ("modified" if sort.startswith("metadata_modified")
                 else "title" if sort.startswith(("title", "name")) else "relevance")
        facets = _facet_fields(p.get("facet.field"))
        # CKAN pages by offset, the index by page: read the one or two pages that cover
        # [start, start + rows) and cut. At most 100 rows per call (``count`` tells the total).
        rows = min(rows, 100)
        per_page = max(rows, 1)
        page, skip = divmod(start, per_page)
        base_query = {"q": str(p.get("q") or "").replace("*:*", ""), **filters,
                      "per_page": per_page, "sort": order}
        search = catalog.search
        if federated is not None and wants_federated(p):
            async def search(query):
                answer = await federated.search(query)
                return answer.result, answer.records
        result, records = await search(search_query({**base_query, "page": page + 1}))
        if skip and rows:
            _, more = await search(search_query({**base_query, "page": page + 2}))
            records = records + more
        records = records[skip:skip + rows] if rows else []
        facet_out = {f: {str(v): n for v, n in result.facets.get(FACET_NAMES[f], {}).items()}
                     for f in facets}
        search_facets = {f: {"title": f, "items": [
            {"name": v, "display_name": v, "count": n} for v, n in counts.items()]}
            for f, counts in facet_out.items()}
        return {"count": result.total, "sort": sort, "facets": facet_out,
                "search_facets": search_facets,
                "results": [package_dict(r, base) for r in records]}

    async def package_show(p: dict[str, Any], base: str) -> dict[str, Any]:
        """One dataset (package) by id."""
        ident = str(p.get("id") or p.get("name_or_id") or "")
        if not ident:
            raise CkanError(409, "Validation Error", "id: Missing value")
        return package_dict(await catalog.get(ident), base)

    async def package_list(p: dict[str, Any], base: str) -> list[str]:
        """The ids of all datasets; limit and offset page through them."""
        limit = p.get("limit")
        return await catalog.dataset_ids(
            limit=_int(limit, "limit", 0, 1_000_000) if limit is not None else None,
            offset=_int(p.get("offset"), "offset", 0, 10_000_000))

    def org_dict(pid: str, name: str, count: int) -> dict[str, Any]:
        return {"id": pid, "name": pid, "title": name, "display_name": name,
                "type": "organization", "is_organization": True, "state": "active",
                "package_count": count}

    async def organization_list(p: dict[str, Any], base: str) -> list[Any]:
        """The publishers (participants) with datasets; all_fields=true for details."""
        orgs = await catalog.publishers()
        if str(p.get("all_fields", "")).lower() in ("true", "1"):
            return [org_dict(*o) for o in orgs]
        return [o[0] for o in orgs]

    async def organization_show(p: dict[str, Any], base: str) -> dict[str, Any]:
        """One publisher by id or name; include_datasets=true lists its datasets."""
        ident = str(p.get("id") or "")
        for o in await catalog.publishers():
            if ident in (o[0], o[1]):
                out = org_dict(*o)
                if str(p.get("include_datasets", "")).lower() in ("true", "1"):
                    _, records = await catalog.search(search_query(
                        {"publisher": o[0], "per_page": 100, "sort": "title"}))
                    out["packages"] = [package_dict(r, base) for r in records]
                return out
        raise NotFound(f"organization {ident!r} not found")

    async def group_list(p: dict[str, Any], base: str) -> list[Any]:
        """The themes (分野) as groups with ASCII names; all_fields=true for details."""
        result, _ = await catalog.search(search_query({"per_page": 1}))
        counts = result.facets.get("theme", {})
        if str(p.get("all_fields", "")).lower() in ("true", "1"):
            return [{"id": slug, "name": slug, "title": theme, "display_name": theme,
                     "type": "group", "state": "active", "package_count": counts.get(theme, 0)}
                    for theme, slug in THEME_SLUGS.items()]
        return list(THEME_SLUGS.values())

    async def status_show(p: dict[str, Any], base: str) -> dict[str, Any]:
        """The site's CKAN version, URL, title and default locale."""
        return {"ckan_version": CKAN_VERSION, "site_url": base,
                "site_title": await store.meta("name") or "areamesh registry",
                "site_description": "areamesh registry catalog (CKAN Action API compatible)",
                "locale_default": "ja", "extensions": ["areamesh"]}

    async def help_show(p: dict[str, Any], base: str) -> str:
        """The documentation of the action given as name (the ``help`` link of every answer)."""
        name = str(p.get("name") or "")
        if name not in actions:
            raise NotFound(f"action {name!r} not found; the actions are "
                           f"{', '.join(sorted(actions))}")
        return inspect.getdoc(actions[name]) or name

    actions: dict[str, Callable[[dict[str, Any], str], Awaitable[Any]]] = {
        "package_search": package_search, "package_show": package_show,
        "package_list": package_list, "organization_list": organization_list,
        "organization_show": organization_show, "group_list": group_list,
        "status_show": status_show, "help_show": help_show,
    }

    @door(PUBLIC)
    async def handle(request: web.Request) -> web.Response:
        name = request.match_info["action"]
        base = f"{request.scheme}://{request.host}"
        help_url = f"{base}/api/3/action/help_show?name={quote(name, safe='')}"
        params: dict[str, Any] = dict(request.query)
        try:
            # strict JSON, with size and time limits; an empty body is no parameters
            data = await read_body(request) if request.method == "POST" else b""
            if data.strip():
                body = parse_json(data)
                if not isinstance(body, dict):
                    return _error(400, help_url, "Bad request", "JSON body must be an object")
                params.update(body)
        except AreameshError as exc:
            return _error(exc.http_status, help_url, "Bad request", exc.message)
        action = actions.get(name)
        if action is None:
            return _error(400, help_url, "Bad request", f"Action name not known: {name}")
        try:
            params = _scalars(params)
            for key, high in INT_PARAMS.items():  # checked whatever the action, as documented
                _int(params.get(key), key, 0, high)
            result = await action(params, base)
        except CkanError as exc:
            return _error(exc.status, help_url, exc.kind, exc.message)
        except AreameshError as exc:     # through the one gate (mesh.egress), as every API
            ref = egress.new_reference()
            egress.log_refusal(log, f"CKAN {name}", exc, ref)
            public = egress.public_error(exc, ref)
            if isinstance(exc, NotFound):
                return _error(404, help_url, "Not Found Error", public.message)
            return _error(409, help_url, "Validation Error", public.message)
        return web.json_response({"help": help_url, "success": True, "result": result},
                                 dumps=lambda o: json.dumps(o, ensure_ascii=False))

    for prefix in ("/api/3/action", "/api/action"):  # CKAN answers on both; ckanapi uses the latter
        app.router.add_route("GET", prefix + "/{action}", handle)
        app.router.add_route("POST", prefix + "/{action}", handle)


def _error(status: int, help_url: str, kind: str, message: str) -> web.Response:
    return web.json_response({"help": help_url, "success": False,
                              "error": {"__type": kind, "message": message}}, status=status,
                             dumps=lambda o: json.dumps(o, ensure_ascii=False))
