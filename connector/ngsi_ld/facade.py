"""The NGSI-LD facade: a consumer's own apps query, at their own connector, the data it holds
under agreements or serves from internal-mode datasets (``views.py``), as NGSI-LD entities.

Routes (door ``ngsi-ld-app``: a facade API key, ``keys.py``, or the node's operator; the
@context documents are public, they hold no data)::

    GET  /ngsi-ld/v1/entities                    query (type, id, idPattern, attrs, q, geo, paging)
    POST /ngsi-ld/v1/entityOperations/query      the same query as a JSON body (CIM 009 6.23)
    GET  /ngsi-ld/v1/entities/{entityId}         one entity
    GET  /ngsi-ld/v1/types                       entity types (details=true: with attributes)
    GET  /ngsi-ld/v1/jsonldContexts/{name}       the @context of a model the facade defines

Read-only: the data belongs to the provider's agreement, so create/update/delete are absent
(405 OperationNotSupported). docs/ngsi-ld.md lists the subset and what is left out.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any
from urllib.parse import quote

from aiohttp import web

from connector.ngsi_ld import geo
from connector.ngsi_ld.keys import FacadeKeys
from connector.ngsi_ld.models import CORE_CONTEXT, CORE_CONTEXTS, builtin_models
from connector.ngsi_ld.problems import (
    INVALID_REQUEST,
    LD_CONTEXT_NOT_AVAILABLE,
    NOT_ACCEPTABLE,
    RESOURCE_NOT_FOUND,
    NgsiLdProblem,
    bad_request,
)
from connector.ngsi_ld.qlang import parse_q
from connector.ngsi_ld.views import FacadeData, ViewData
from mesh.http_auth import NGSI_LD_READ as APP_DOOR
from mesh.http_auth import NODE_OPERATOR, PUBLIC, door, principal_of
from mesh.http_input import read_json

BASE = "/ngsi-ld/v1"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
JSON, LD_JSON, GEO_JSON = "application/json", "application/ld+json", "application/geo+json"
CONTEXT_REL = "http://www.w3.org/ns/json-ld#context"
CORE_PREFIX = "https://uri.etsi.org/ngsi-ld/"
_LINK = re.compile(r'<([^>]*)>\s*((?:;\s*[A-Za-z]+\s*=\s*(?:"[^"]*"|[^;,]*)\s*)*)')
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")
FACADE = web.AppKey("ngsi_ld_facade", object)


class Query:
    """One entity query, parsed and checked (GET parameters or a POST Query body)."""

    def __init__(self, *, types: list[str] | None, ids: list[str] | None, id_pattern: str | None,
                 attrs: list[str] | None, q: str | None, geoquery: geo.GeoQuery | None,
                 compact) -> None:
        self.types = {compact(t) for t in types} if types else None
        self.ids = set(ids) if ids else None
        self.attrs = [compact(a) for a in attrs] if attrs else None
        self.q = parse_q(q) if q is not None else None
        self.geo = geoquery
        if id_pattern is not None:
            try:
                self.id_pattern = re.compile(id_pattern)
            except re.error as exc:
                raise bad_request(f"idPattern {id_pattern!r} is not a valid regular expression: {exc}",
                                  parameter="idPattern") from None
        else:
            self.id_pattern = None
        if not (self.types or self.attrs or self.q or self.geo):
            raise bad_request("a query needs at least one of type, attrs, q or a geo-query "
                              "(georel, geometry, coordinates)")

    def matches(self, entity: dict[str, Any]) -> bool:
        if self.types is not None and "*" not in self.types and entity["type"] not in self.types:
            return False
        if self.ids is not None and entity["id"] not in self.ids:
            return False
        if self.id_pattern is not None and not self.id_pattern.fullmatch(entity["id"]):
            return False
        if self.attrs is not None and not any(a in entity for a in self.attrs):
            return False
        if self.q is not None and not self.q.matches(entity):
            return False
        return self.geo is None or self.geo.matches(entity)


def _list(value: str | None, name: str, *, uris: bool = False) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if not value.strip() or any(not v for v in items):
        raise bad_request(f"{name} is an empty item in a comma-separated list", parameter=name)
    if uris:
        bad = [v for v in items if not _URI.match(v)]
        if bad:
            raise bad_request(f"{name}: {bad[0]!r} is not a URI (entity ids are URIs such as "
                              "urn:ngsi-ld:AED:282014-0001)", parameter=name)
    return items


def _types(value: str | None) -> list[str] | None:
    if value is None:
        return None
    if any(c in value for c in ";()"):
        raise bad_request("type: this facade takes a type or a comma- or '|'-separated list of "
                          "types (the rest of the Entity Type Selection Language is not supported)",
                          parameter="type")
    return _list(value.replace("|", ","), "type")


def _int(request_value: str | None, name: str, default: int) -> int:
    if request_value is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", request_value):
        raise bad_request(f"{name} must be a whole number ≥ 0, not {request_value[:20]!r}",
                          parameter=name)
    return int(request_value)


def _attrs(value: str | None) -> list[str] | None:
    attrs = _list(value, "attrs")
    if attrs and any(a in ("id", "type", "@context") for a in attrs):
        raise bad_request("attrs names attributes; id and type are always part of an entity and "
                          "cannot be listed", parameter="attrs")
    return attrs


def _link_context(request: web.Request) -> str | None:
    header = request.headers.get("Link")
    if not header:
        return None
    for m in _LINK.finditer(header):
        params = dict((k.strip().lower(), v.strip().strip('"'))
                      for k, _, v in (p.partition("=") for p in m.group(2).split(";") if "=" in p))
        if params.get("rel") == CONTEXT_REL:
            return m.group(1)
    return None


class NgsiLdFacade:
    def __init__(self, data: FacadeData, keys: FacadeKeys) -> None:
        self.data, self.keys = data, keys

    # ---- who may read which view ----------------------------------------------------------

    def _allowed(self, request: web.Request):
        principal = principal_of(request)
        if principal.kind == NODE_OPERATOR:
            if principal.scope:
                return lambda view: False     # a tenant's console account: not the node's data
            return lambda view: True
        key = self.keys.load().get(principal.id)
        return (lambda view: key.admits(view)) if key else (lambda view: False)

    async def _views(self, request: web.Request) -> list[ViewData]:
        return await self.data.serving(self._allowed(request))

    # ---- @context -------------------------------------------------------------------------

    def _context_url(self, request: web.Request, data: ViewData) -> str:
        if data.model.context == "local":
            stem = data.model.name.removeprefix("builtin:")
            return f"{request.scheme}://{request.host}{BASE}/jsonldContexts/{quote(stem)}"
        return data.model.context or CORE_CONTEXT

    def _request_contexts(self, request: web.Request, views: list[ViewData],
                          body_context: Any = None) -> set[str]:
        """The @context URLs the request brings (Link header, or a JSON-LD body's), each one the
        facade knows: it resolves nothing over the network, so an unknown one is a 503
        LdContextNotAvailable naming the ones it knows."""
        given = [body_context] if isinstance(body_context, str) else \
            [c for c in body_context if isinstance(c, str)] if isinstance(body_context, list) else []
        link = _link_context(request)
        if link:
            given.append(link)
        known = set(CORE_CONTEXTS) | {self._context_url(request, v) for v in views}
        for url in given:
            if url not in known:
                raise NgsiLdProblem(LD_CONTEXT_NOT_AVAILABLE,
                                    f"@context {url} is not one this facade knows (it resolves no "
                                    "context over the network); use the core context or one of "
                                    f"its models' contexts: {', '.join(sorted(known))}",
                                    status=503, code="ld_context_not_available")
        return set(given)

    def _compactor(self, views: list[ViewData]):
        vocabs = sorted({v.model.vocab for v in views if v.model.vocab}, key=len, reverse=True)

        def compact(term: str) -> str:
            for prefix in vocabs:
                if term.startswith(prefix):
                    return term[len(prefix):]
            if term.startswith(CORE_PREFIX):
                return term.rsplit("/", 1)[-1]
            return term

        return compact

    # ---- answering --------------------------------------------------------------------------

    @staticmethod
    def _accept(request: web.Request) -> str:
        accept = request.headers.get("Accept", "*/*")
        offered = [p.split(";")[0].strip().lower() for p in accept.split(",") if p.strip()]
        for media in offered:
            if media in (JSON, LD_JSON, GEO_JSON):
                return media
            if media in ("*/*", "application/*"):
                return JSON
        raise NgsiLdProblem(NOT_ACCEPTABLE, f"Accept {accept[:100]!r}: this facade answers "
                            "application/json, application/ld+json or application/geo+json",
                            status=406, code="not_acceptable")

    @staticmethod
    def _options(request_options: str | None, fmt: str | None) -> bool:
        """True for the simplified (keyValues) representation."""
        options = set(_list(request_options, "options") or [])
        unknown = options - {"keyValues", "concise", "normalized", "sysAttrs"}
        if unknown:
            raise bad_request(f"options: {', '.join(sorted(unknown))} not supported here",
                              parameter="options")
        if fmt not in (None, "simplified", "keyValues", "normalized", "concise"):
            raise bad_request(f"format {fmt!r} is not simplified or normalized", parameter="format")
        return "keyValues" in options or fmt in ("simplified", "keyValues")

    def _render(self, request: web.Request, entity: dict[str, Any], data: ViewData,
                attrs: list[str] | None, simplified: bool, media: str,
                contexts: set[str]) -> dict[str, Any]:
        """The entity as the request asked for it. Its terms are compacted with the context the
        request brought: with the model's context, short names; without it (the default is the
        core context), the model's terms as full IRIs (its vocab), core terms short."""
        from connector.ngsi_ld.qlang import attribute_value

        short = self._compact_for(request, data, contexts)
        vocab = data.model.vocab or ""

        def term(name: str) -> str:
            return name if short or not vocab or name in data.model.core_terms else vocab + name

        names = [k for k in entity if k not in ("id", "type") and (attrs is None or k in attrs)]
        out: dict[str, Any] = {"id": entity["id"], "type": term(entity["type"])}
        for name in names:
            out[term(name)] = attribute_value(entity[name]) if simplified else entity[name]
        if media == GEO_JSON:
            where = entity.get("location")
            return {"id": entity["id"], "type": "Feature",
                    "geometry": where.get("value") if isinstance(where, dict) else None,
                    "properties": {k: v for k, v in out.items() if k != "id"}}
        if media == LD_JSON:
            out["@context"] = [self._context_url(request, data), CORE_CONTEXT] if short \
                else CORE_CONTEXT
        return out

    def _compact_for(self, request: web.Request, data: ViewData, contexts: set[str]) -> bool:
        return bool(data.model.context) and self._context_url(request, data) in contexts

    def _respond(self, request: web.Request, body: Any, media: str, views: list[ViewData],
                 contexts: set[str], headers: dict[str, str] | None = None) -> web.Response:
        headers = dict(headers or {})
        if media == JSON:
            compacted = {self._context_url(request, v) for v in views
                         if self._compact_for(request, v, contexts)}
            ctx = compacted.pop() if len(compacted) == 1 else CORE_CONTEXT
            headers["Link"] = f'<{ctx}>; rel="{CONTEXT_REL}"; type="{LD_JSON}"'
        return web.json_response(body, headers=headers, content_type=media)

    async def _query(self, request: web.Request, views: list[ViewData], query: Query, *,
                     limit: int, offset: int, count: bool, simplified: bool, media: str,
                     contexts: set[str]) -> web.Response:
        if limit > MAX_LIMIT:
            raise bad_request(f"limit {limit} is above this facade's maximum of {MAX_LIMIT}; page "
                              "with offset", parameter="limit")
        if limit == 0 and not count:
            raise bad_request("limit=0 is only meaningful with count=true", parameter="limit")
        matched: list[tuple[dict[str, Any], ViewData]] = []
        for data in views:
            matched.extend((e, data) for e in data.entities if query.matches(e))
        page = matched[offset:offset + limit]
        entities = [self._render(request, e, d, query.attrs, simplified, media, contexts)
                    for e, d in page]
        body: Any = entities
        if media == GEO_JSON:
            body = {"type": "FeatureCollection", "features": entities}
        headers = {"NGSILD-Results-Count": str(len(matched))} if count else {}
        return self._respond(request, body, media, views, contexts, headers)

    # ---- handlers ---------------------------------------------------------------------------

    @door(APP_DOOR)
    async def query_entities(self, request: web.Request) -> web.Response:
        p = request.query
        media = self._accept(request)
        simplified = self._options(p.get("options"), p.get("format"))
        views = await self._views(request)
        contexts = self._request_contexts(request, views)
        compact = self._compactor(views)
        geoquery = geo.parse_geoquery(p.get("georel"), p.get("geometry"), p.get("coordinates"),
                                      p.get("geoproperty"))
        if geoquery is not None:
            geoquery = _compact_geo(geoquery, compact)
        query = Query(types=_types(p.get("type")), ids=_list(p.get("id"), "id", uris=True),
                      id_pattern=p.get("idPattern"), attrs=_attrs(p.get("attrs")), q=p.get("q"),
                      geoquery=geoquery, compact=compact)
        _no_unknown(p, {"type", "id", "idPattern", "attrs", "q", "georel", "geometry",
                        "coordinates", "geoproperty", "limit", "offset", "count", "options",
                        "format", "local"})
        return await self._query(request, views, query, limit=_int(p.get("limit"), "limit", DEFAULT_LIMIT),
                                 offset=_int(p.get("offset"), "offset", 0),
                                 count=_bool(p.get("count"), "count"), simplified=simplified,
                                 media=media, contexts=contexts)

    @door(APP_DOOR)
    async def query_post(self, request: web.Request) -> web.Response:
        p = request.query
        media = self._accept(request)
        simplified = self._options(p.get("options"), p.get("format"))
        ctype = request.content_type
        if ctype not in (JSON, LD_JSON):
            raise NgsiLdProblem(INVALID_REQUEST, f"Content-Type {ctype!r}: send the Query as "
                                "application/json or application/ld+json", status=415,
                                code="unsupported_media_type")
        body = await read_json(request)
        if not isinstance(body, dict) or body.get("type") != "Query":
            raise bad_request('the body must be a Query object: {"type": "Query", "entities": '
                              '[{"type": "AED"}], "q": …, "geoQ": {…}}')
        views = await self._views(request)
        contexts = self._request_contexts(request, views, body.get("@context"))
        compact = self._compactor(views)
        selectors = body.get("entities")
        types: list[str] | None = None
        ids: list[str] | None = None
        pattern = None
        if selectors is not None:
            if not isinstance(selectors, list) or not all(isinstance(s, dict) for s in selectors):
                raise bad_request("entities must be a list of {type, id?, idPattern?}",
                                  parameter="entities")
            types = [s["type"] for s in selectors if isinstance(s.get("type"), str)] or None
            ids = [s["id"] for s in selectors if isinstance(s.get("id"), str)] or None
            patterns = [s["idPattern"] for s in selectors if isinstance(s.get("idPattern"), str)]
            pattern = "|".join(f"(?:{x})" for x in patterns) if patterns else None
            if ids:
                _list(",".join(ids), "entities[].id", uris=True)
        geo_q = body.get("geoQ")
        geoquery = None
        if geo_q is not None:
            if not isinstance(geo_q, dict):
                raise bad_request("geoQ must be an object {georel, geometry, coordinates}",
                                  parameter="geoQ")
            coordinates = geo_q.get("coordinates")
            geoquery = geo.parse_geoquery(_str(geo_q.get("georel"), "geoQ.georel"),
                                          _str(geo_q.get("geometry"), "geoQ.geometry"),
                                          coordinates if coordinates is not None else None,
                                          _str(geo_q.get("geoproperty"), "geoQ.geoproperty"))
            if geoquery is not None:
                geoquery = _compact_geo(geoquery, compact)
        attrs = body.get("attrs")
        if attrs is not None and (not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)):
            raise bad_request("attrs must be a list of attribute names", parameter="attrs")
        query = Query(types=types, ids=ids, id_pattern=pattern,
                      attrs=_attrs(",".join(attrs)) if attrs else None,
                      q=_str(body.get("q"), "q"), geoquery=geoquery, compact=compact)
        return await self._query(request, views, query, limit=_int(p.get("limit"), "limit", DEFAULT_LIMIT),
                                 offset=_int(p.get("offset"), "offset", 0),
                                 count=_bool(p.get("count"), "count"), simplified=simplified,
                                 media=media, contexts=contexts)

    @door(APP_DOOR)
    async def retrieve_entity(self, request: web.Request) -> web.Response:
        entity_id = request.match_info["entity_id"]
        if not _URI.match(entity_id):
            raise bad_request(f"{entity_id[:100]!r} is not a URI (entity ids are URIs such as "
                              "urn:ngsi-ld:AED:282014-0001)", parameter="entityId")
        p = request.query
        media = self._accept(request)
        simplified = self._options(p.get("options"), p.get("format"))
        views = await self._views(request)
        contexts = self._request_contexts(request, views)
        compact = self._compactor(views)
        attrs = [compact(a) for a in _attrs(p.get("attrs")) or []] or None
        for data in views:
            entity = data.by_id.get(entity_id)
            if entity is not None:
                if attrs and not any(a in entity for a in attrs):
                    raise NgsiLdProblem(RESOURCE_NOT_FOUND, f"entity {entity_id} has none of the "
                                        f"attributes {', '.join(attrs)}", status=404,
                                        code="attribute_not_found")
                rendered = self._render(request, entity, data, attrs, simplified, media, contexts)
                return self._respond(request, rendered, media, [data], contexts)
        raise NgsiLdProblem(RESOURCE_NOT_FOUND, f"no entity {entity_id} here (or none this key may "
                            "read)", status=404, code="entity_not_found")

    @door(APP_DOOR)
    async def types(self, request: web.Request) -> web.Response:
        media = self._accept(request)
        details = _bool(request.query.get("details"), "details")
        views = await self._views(request)
        contexts = self._request_contexts(request, views)
        names: dict[str, set[str]] = {}
        iris: dict[str, str] = {}       # a type's name as answered → its full IRI (the EntityType id)
        for data in views:
            short = self._compact_for(request, data, contexts)
            vocab = data.model.vocab or ""

            def term(name: str, short=short, vocab=vocab, core=data.model.core_terms) -> str:
                return name if short or not vocab or name in core else vocab + name

            for e in data.entities:
                names.setdefault(term(e["type"]), set()).update(
                    term(k) for k in e if k not in ("id", "type"))
                iris[term(e["type"])] = vocab + e["type"] if vocab else e["type"]
        if details:
            body: Any = [{"id": iris[t], "type": "EntityType", "typeName": t,
                          "attributeNames": sorted(a)} for t, a in sorted(names.items())]
        else:
            digest = hashlib.sha256(",".join(sorted(names)).encode()).hexdigest()[:16]
            body = {"id": f"urn:ngsi-ld:EntityTypeList:{digest}", "type": "EntityTypeList",
                    "typeList": sorted(names)}
        if media == LD_JSON:
            items = body if isinstance(body, list) else [body]
            for item in items:
                item["@context"] = [CORE_CONTEXT]
        return self._respond(request, body, JSON if media == GEO_JSON else media, views, contexts)

    @door(PUBLIC)
    async def context(self, request: web.Request) -> web.Response:
        """The @context of a model whose context the facade defines (``context: local``): each
        term of the model mapped to its IRI. Term definitions only, no data: public."""
        name = request.match_info["name"]
        model = builtin_models().get(f"builtin:{name}")
        if model is None or model.context != "local" or not model.vocab:
            raise NgsiLdProblem(RESOURCE_NOT_FOUND, f"no @context {name!r} here", status=404,
                                code="context_not_found")
        terms = {model.type: model.vocab + model.type}
        terms.update({r.name: model.vocab + r.name for r in model.rules
                      if r.name not in ("location", "name", "description")})
        return web.json_response({"@context": terms}, content_type=LD_JSON)

    @door(APP_DOOR)
    async def read_only(self, request: web.Request) -> web.Response:
        from connector.ngsi_ld.problems import OPERATION_NOT_SUPPORTED

        raise NgsiLdProblem(OPERATION_NOT_SUPPORTED, f"{request.method} {request.path}: the facade "
                            "is read-only (the data belongs to an agreement or an internal-mode "
                            "dataset)", status=405, code="read_only")

    def add_routes(self, app: web.Application) -> None:
        app[FACADE] = self
        app.router.add_get(f"{BASE}/entities", self.query_entities)
        app.router.add_post(f"{BASE}/entities", self.read_only)
        app.router.add_get(f"{BASE}/entities/{{entity_id}}", self.retrieve_entity)
        app.router.add_post(f"{BASE}/entityOperations/query", self.query_post)
        app.router.add_get(f"{BASE}/types", self.types)
        app.router.add_get(f"{BASE}/jsonldContexts/{{name}}", self.context)


def _str(value: Any, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise bad_request(f"{name} must be a string", parameter=name)


def _bool(value: str | None, name: str) -> bool:
    if value in (None, "false"):
        return False
    if value == "true":
        return True
    raise bad_request(f"{name} must be true or false, not {value[:20]!r}", parameter=name)


def _no_unknown(params, known: set[str]) -> None:
    unknown = sorted(set(params) - known)
    if unknown:
        raise bad_request(f"unknown or unsupported query parameter(s): {', '.join(unknown)} "
                          "(docs/ngsi-ld.md lists the subset)", parameter=unknown[0])


def _compact_geo(g: geo.GeoQuery, compact) -> geo.GeoQuery:
    from dataclasses import replace

    return replace(g, geoproperty=compact(g.geoproperty))
