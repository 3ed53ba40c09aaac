"""A fake FIWARE Orion for the tests: an aiohttp server on 127.0.0.1 implementing the shapes the
FIWARE-NGSI v2 specification (release 2.1, Orion's ``doc/manuals/orion-api.md``) documents.

What it implements:
- tenancy: ``Fiware-Service`` (checked as Orion does: a-z 0-9 _, at most 50; each service is its
  own store) and ``Fiware-ServicePath`` (updates default to ``/``, queries to ``/#``; ``/a/#``
  matches the subtree);
- ``GET /v2/entities`` with ``type``, ``idPattern``, ``q`` (statements ``a==v``, ``a!=v``,
  ``a>n``, ``a<n``, ``a`` and ``!a``, joined by ``;``), ``attrs`` (builtins ``dateCreated`` and
  ``dateModified`` only when asked), ``orderBy`` (``id``, an attribute, ``!`` for descending),
  ``limit`` (1–1000, default 20), ``offset``, ``options=count`` (the ``Fiware-Total-Count``
  header) and ``keyValues``;
- ``POST /v2/op/update`` with ``actionType`` append, appendStrict, update, replace, delete: the
  whole payload is checked before anything changes (``ParseError``, ``BadRequest`` for field
  syntax and the characters Orion forbids in values, ``RequestEntityTooLarge`` over 1 MiB),
  then each entity: ``NotFound`` (404) or ``Unprocessable`` (422) as the specification says;
  success is 204;
- ``POST/GET/DELETE /v2/subscriptions``: subject ``entities`` (``id``/``idPattern``, ``type``),
  ``notification.http.url`` or ``notification.httpCustom`` (``url``, ``headers``),
  ``attrsFormat`` (normalized, keyValues); creation answers 201 with ``Location``; every change of a
  matching entity sends ``{"subscriptionId", "data": [entity]}`` with the ``Ngsiv2-AttrsFormat``,
  ``Fiware-Service`` and ``Fiware-ServicePath`` headers, and the subscription records
  ``timesSent``, ``lastSuccess``/``lastFailure``, ``lastSuccessCode``/``lastFailureReason``;
- errors as ``{"error": …, "description": …}`` with the specification's status codes.

Test hooks: ``require_token`` (a PEP proxy in front: 401 without ``Authorization: Bearer`` or
``X-Auth-Token``), ``fail_updates`` (``{n: (status, error, description)}`` for the n-th
``op/update``), ``put()`` to seed entities, ``requests`` (what was asked), ``drain()`` (wait for
notifications sent so far).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

MAX_PAYLOAD = 1024 * 1024
FIELD_RE = re.compile(r"^[\x21-\x7e]{1,256}$")
FORBIDDEN = set("<>\"'=;()")
BUILTINS = ("dateCreated", "dateModified", "dateExpires")


class OrionError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def bad(description: str) -> OrionError:
    return OrionError(400, "BadRequest", description)


def iso(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Entity:
    id: str
    type: str
    path: str
    attrs: dict[str, dict[str, Any]]
    created: dt.datetime
    modified: dt.datetime


@dataclass
class Subscription:
    id: str
    path: str
    doc: dict[str, Any]
    url: str
    headers: dict[str, str]
    attrs_format: str
    times_sent: int = 0
    last: dict[str, Any] = field(default_factory=dict)


@dataclass
class Tenant:
    entities: dict[tuple[str, str], Entity] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)


def _check_field(value: Any, what: str) -> str:
    if not isinstance(value, str) or not FIELD_RE.match(value) or set(value) & set("&?/#"):
        raise bad(f"Invalid characters in {what}")
    return value


def _check_value(value: Any) -> None:
    if isinstance(value, str) and set(value) & FORBIDDEN:
        raise bad("Invalid characters in attribute value")
    if isinstance(value, list):
        for v in value:
            _check_value(v)
    if isinstance(value, dict):
        for v in value.values():
            _check_value(v)


def _default_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int | float):
        return "Number"
    if isinstance(value, str):
        return "Text"
    if value is None:
        return "None"
    return "StructuredValue"


def _path_matches(query: str, path: str) -> bool:
    if query.endswith("/#"):
        base = query[:-2] or "/"
        return base == "/" or path == base or path.startswith(base + "/")
    return path == query


class FakeOrion:
    def __init__(self) -> None:
        self.tenants: dict[str, Tenant] = {}
        self.require_token: str | None = None
        self.fail_updates: dict[int, tuple[int, str, str]] = {}
        self.update_calls = 0
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self._clock = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self._sending: set[asyncio.Task] = set()
        self._client: aiohttp.ClientSession | None = None
        self.app = web.Application(middlewares=[self._errors], client_max_size=MAX_PAYLOAD * 4)
        self.app.router.add_get("/version", self.version)
        self.app.router.add_get("/v2/entities", self.list_entities)
        self.app.router.add_post("/v2/op/update", self.op_update)
        self.app.router.add_get("/v2/subscriptions", self.list_subscriptions)
        self.app.router.add_post("/v2/subscriptions", self.create_subscription)
        self.app.router.add_get("/v2/subscriptions/{sid}", self.get_subscription)
        self.app.router.add_delete("/v2/subscriptions/{sid}", self.delete_subscription)
        self.runner: web.AppRunner | None = None
        self.base = ""

    # ---------------------------------------------------------------- life cycle

    async def start(self) -> FakeOrion:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.base = f"http://{host}:{port}"
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def stop(self) -> None:
        await self.drain()
        if self._client is not None:
            await self._client.close()
        if self.runner is not None:
            await self.runner.cleanup()

    async def drain(self) -> None:
        """Wait until every notification sent so far got its answer."""
        while self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    # ---------------------------------------------------------------- helpers

    def _tick(self) -> dt.datetime:
        now = max(dt.datetime.now(dt.UTC), self._clock + dt.timedelta(milliseconds=1))
        self._clock = now
        return now

    @web.middleware
    async def _errors(self, request: web.Request, handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query),
                              dict(request.headers)))
        try:
            if self.require_token is not None:
                given = request.headers.get("X-Auth-Token") or \
                    request.headers.get("Authorization", "").removeprefix("Bearer ")
                if given != self.require_token:
                    raise OrionError(401, "Unauthorized", "missing or wrong token (PEP proxy)")
            return await handler(request)
        except OrionError as exc:
            return web.json_response({"error": exc.error, "description": exc.description},
                                     status=exc.status)

    def tenant(self, request: web.Request) -> Tenant:
        service = request.headers.get("Fiware-Service", "")
        if service and not re.fullmatch(r"[A-Za-z0-9_]{1,50}", service):
            raise bad("bad character in tenant name")
        return self.tenants.setdefault(service.lower(), Tenant())

    @staticmethod
    def path(request: web.Request, *, query: bool) -> str:
        value = request.headers.get("Fiware-ServicePath", "/#" if query else "/")
        parts = [p.strip() for p in value.split(",")]
        if len(parts) != 1:
            raise bad("only one service path is supported here")
        p = parts[0]
        if not p.startswith("/") or (not query and p.endswith("#")):
            raise bad("Only /absolute/ Service Paths allowed [a service path must begin with /]")
        return p

    def put(self, entity: dict[str, Any], *, service: str = "", path: str = "/") -> None:
        """Seed an entity (normalized form) without notifications."""
        now = self._tick()
        attrs = {k: {"type": v.get("type") or _default_type(v.get("value")), "value": v.get("value"),
                     "metadata": v.get("metadata", {})}
                 for k, v in entity.items() if k not in ("id", "type")}
        self.tenants.setdefault(service, Tenant()).entities[(entity["id"], entity["type"])] = \
            Entity(entity["id"], entity["type"], path, attrs, now, now)

    def entities_of(self, service: str = "", entity_type: str | None = None) -> list[Entity]:
        tenant = self.tenants.get(service)
        if tenant is None:
            return []
        return [e for e in tenant.entities.values() if entity_type in (None, e.type)]

    # ---------------------------------------------------------------- rendering and queries

    @staticmethod
    def render(e: Entity, *, key_values: bool, attrs: list[str] | None) -> dict[str, Any]:
        names = [a for a in e.attrs if attrs is None or a in attrs or "*" in attrs]
        out: dict[str, Any] = {"id": e.id, "type": e.type}
        for name in names:
            a = e.attrs[name]
            out[name] = a["value"] if key_values else {"type": a["type"], "value": a["value"],
                                                       "metadata": a.get("metadata", {})}
        for builtin, value in (("dateCreated", e.created), ("dateModified", e.modified)):
            if attrs is not None and builtin in attrs:
                out[builtin] = iso(value) if key_values else {"type": "DateTime", "value": iso(value),
                                                              "metadata": {}}
        return out

    @staticmethod
    def _q(q: str) -> list[tuple[str, str | None, str | None]]:
        statements = []
        for s in q.split(";"):
            m = re.fullmatch(r"(!?)([A-Za-z0-9_:.-]+)(?:(==|!=|>=|<=|>|<|:)(.+))?", s.strip())
            if not m or (m[1] and m[3]):
                raise bad(f"invalid query expression: {s!r}")
            op = "==" if m[3] == ":" else m[3]
            statements.append((m[2], op if m[3] else ("!" if m[1] else None), m[4]))
        return statements

    @staticmethod
    def _matches_q(e: Entity, statements: list[tuple[str, str | None, str | None]]) -> bool:
        for name, op, raw in statements:
            attr = e.attrs.get(name)
            if op == "!":
                if attr is not None:
                    return False
                continue
            if attr is None:
                return False
            if op is None:
                continue
            value = attr["value"]
            try:
                if isinstance(value, bool):
                    wanted: Any = {"true": True, "false": False}[raw]
                elif isinstance(value, int | float):
                    wanted = float(raw)
                else:
                    wanted = raw.strip("'")
            except (KeyError, ValueError):
                return False
            ok = {"==": value == wanted, "!=": value != wanted}.get(op)
            if ok is None:
                try:
                    ok = {">": value > wanted, "<": value < wanted, ">=": value >= wanted,
                          "<=": value <= wanted}[op]
                except TypeError:
                    ok = False
            if not ok:
                return False
        return True

    def _select(self, request: web.Request) -> list[Entity]:
        tenant = self.tenant(request)
        path = self.path(request, query=True)
        q = request.query
        types = q["type"].split(",") if "type" in q else None
        try:
            pattern = re.compile(q["idPattern"]) if "idPattern" in q else None
        except re.error:
            raise bad("invalid regex for idPattern") from None
        statements = self._q(q["q"]) if "q" in q else []
        found = [e for e in tenant.entities.values()
                 if (types is None or e.type in types) and _path_matches(path, e.path)
                 and (pattern is None or pattern.search(e.id)) and self._matches_q(e, statements)]
        if "orderBy" in q:
            for key in reversed(q["orderBy"].split(",")):
                desc = key.startswith("!")
                name = key.lstrip("!")

                def sort_key(e: Entity, name: str = name) -> Any:
                    if name == "id":
                        return e.id
                    if name in ("dateModified", "dateCreated"):
                        return e.modified if name == "dateModified" else e.created
                    value = e.attrs.get(name, {}).get("value")
                    return (value is None, str(value))
                found.sort(key=sort_key, reverse=desc)
        return found

    # ---------------------------------------------------------------- routes

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"orion": {"version": "fake-3.10", "doc": "orion-api.md"}})

    async def list_entities(self, request: web.Request) -> web.Response:
        q = request.query
        options = set(filter(None, q.get("options", "").split(",")))
        if options - {"count", "keyValues"}:
            raise bad("Invalid value for URI param /options/")
        try:
            limit = int(q.get("limit", "20"))
            offset = int(q.get("offset", "0"))
        except ValueError:
            raise bad("Bad pagination limit or offset [must be a decimal number]") from None
        if not 1 <= limit <= 1000:
            raise bad(f"Bad pagination limit: /{limit}/ [a value between 1 and 1000]")
        if offset < 0:
            raise bad(f"Bad pagination offset: /{offset}/ [must be a decimal number]")
        found = self._select(request)
        attrs = q["attrs"].split(",") if "attrs" in q else None
        page = [self.render(e, key_values="keyValues" in options, attrs=attrs)
                for e in found[offset:offset + limit]]
        headers = {"Fiware-Total-Count": str(len(found))} if "count" in options else {}
        return web.json_response(page, headers=headers)

    async def op_update(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if len(raw) > MAX_PAYLOAD:
            raise OrionError(413, "RequestEntityTooLarge",
                             f"payload size: {len(raw)}, max size supported: {MAX_PAYLOAD}")
        try:
            doc = json.loads(raw)
        except ValueError:
            raise OrionError(400, "ParseError", "Errors found in incoming JSON buffer") from None
        self.update_calls += 1
        if self.update_calls in self.fail_updates:
            status, error, description = self.fail_updates[self.update_calls]
            raise OrionError(status, error, description)
        tenant = self.tenant(request)
        path = self.path(request, query=False)
        action = doc.get("actionType") if isinstance(doc, dict) else None
        if action not in ("append", "appendStrict", "update", "replace", "delete"):
            raise bad("invalid update action type: right ones are: append, appendStrict, delete, "
                      "replace, update")
        entities = doc.get("entities")
        if not isinstance(entities, list):
            raise bad("Invalid JSON type for entities (must be array)")
        for e in entities:       # the whole payload is parsed and checked before any change
            if not isinstance(e, dict):
                raise bad("entity must be a JSON object")
            _check_field(e.get("id"), "entity id")
            _check_field(e.get("type", "Thing"), "entity type")
            for name, attr in e.items():
                if name in ("id", "type"):
                    continue
                _check_field(name, "attribute name")
                if name in BUILTINS or name == "geo:distance":
                    raise bad(f"Reserved attribute name: {name}")
                if not isinstance(attr, dict):
                    raise bad(f"attribute must be a JSON object, unless keyValues option is used: {name}")
                if "type" in attr:
                    _check_field(attr["type"], "attribute type")
                _check_value(attr.get("value"))
        missing, clashes = [], []
        changed: list[Entity] = []
        for e in entities:
            key = (e["id"], e.get("type", "Thing"))
            attrs = {k: {"type": v.get("type") or _default_type(v.get("value")),
                         "value": v.get("value"), "metadata": v.get("metadata", {})}
                     for k, v in e.items() if k not in ("id", "type")}
            current = tenant.entities.get(key)
            if current is not None and current.path != path:
                current = None if action in ("append", "appendStrict") else current
            if action in ("append", "appendStrict"):
                if current is None:
                    now = self._tick()
                    current = tenant.entities[key] = Entity(key[0], key[1], path, attrs, now, now)
                    changed.append(current)
                    continue
                if action == "appendStrict" and (taken := [a for a in attrs if a in current.attrs]):
                    clashes.append(f"{key[0]} - {taken}")
                    continue
                current.attrs.update(attrs)
            elif current is None:
                missing.append(key[0])
                continue
            elif action == "update":
                if (absent := [a for a in attrs if a not in current.attrs]):
                    missing.append(f"{key[0]} - {absent}")
                    continue
                current.attrs.update(attrs)
            elif action == "replace":
                current.attrs = attrs
            else:   # delete
                if attrs:
                    for a in attrs:
                        current.attrs.pop(a, None)
                else:
                    del tenant.entities[key]
                    continue
            current.modified = self._tick()
            changed.append(current)
        for e in changed:
            self._notify(tenant, e)
        if clashes:
            raise OrionError(422, "Unprocessable", "one or more of the attributes in the request "
                             f"already exist: {', '.join(clashes)}")
        if missing:
            if len(missing) == len(entities):
                raise OrionError(404, "NotFound",
                                 "The requested entity has not been found. Check type and id")
            raise OrionError(422, "PartialUpdate", f"do not exist: {', '.join(missing)}")
        return web.Response(status=204)

    # ---------------------------------------------------------------- subscriptions

    async def create_subscription(self, request: web.Request) -> web.Response:
        tenant = self.tenant(request)
        path = self.path(request, query=True)
        try:
            doc = await request.json()
        except ValueError:
            raise OrionError(400, "ParseError", "Errors found in incoming JSON buffer") from None
        subject = doc.get("subject") if isinstance(doc, dict) else None
        notification = doc.get("notification") if isinstance(doc, dict) else None
        if not isinstance(subject, dict) or not isinstance(subject.get("entities"), list) \
                or not subject["entities"]:
            raise bad("Invalid JSON field: /subject/entities/ is mandatory and must be a non-empty array")
        for e in subject["entities"]:
            if not isinstance(e, dict) or ("id" in e) == ("idPattern" in e):
                raise bad("subject entity: one of id or idPattern is required")
            if "idPattern" in e:
                try:
                    re.compile(e["idPattern"])
                except re.error:
                    raise bad("invalid regex for idPattern") from None
        if not isinstance(notification, dict):
            raise bad("Invalid JSON field: /notification/ is mandatory")
        target = notification.get("http") or notification.get("httpCustom")
        if not isinstance(target, dict) or not str(target.get("url", "")).startswith(("http://", "https://")):
            raise bad("Invalid URL: /notification/http/url/ must be an http or https URL")
        fmt = notification.get("attrsFormat", "normalized")
        if fmt not in ("normalized", "keyValues", "values", "simplifiedNormalized", "simplifiedKeyValues"):
            raise bad(f"invalid attrsFormat: /{fmt}/")
        sid = secrets.token_hex(12)
        tenant.subscriptions[sid] = Subscription(sid, path, doc, target["url"],
                                                 dict(target.get("headers") or {}), fmt)
        return web.Response(status=201, headers={"Location": f"/v2/subscriptions/{sid}"})

    def _sub_doc(self, s: Subscription) -> dict[str, Any]:
        notification = {**s.doc["notification"], "timesSent": s.times_sent, **s.last}
        return {"id": s.id, **s.doc, "notification": notification, "status": "active"}

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        tenant = self.tenant(request)
        subs = list(tenant.subscriptions.values())
        return web.json_response([self._sub_doc(s) for s in subs],
                                 headers={"Fiware-Total-Count": str(len(subs))})

    async def get_subscription(self, request: web.Request) -> web.Response:
        s = self.tenant(request).subscriptions.get(request.match_info["sid"])
        if s is None:
            raise OrionError(404, "NotFound", "The requested subscription has not been found. Check id")
        return web.json_response(self._sub_doc(s))

    async def delete_subscription(self, request: web.Request) -> web.Response:
        if self.tenant(request).subscriptions.pop(request.match_info["sid"], None) is None:
            raise OrionError(404, "NotFound", "The requested subscription has not been found. Check id")
        return web.Response(status=204)

    def subscriptions_of(self, service: str = "") -> list[Subscription]:
        tenant = self.tenants.get(service)
        return list(tenant.subscriptions.values()) if tenant else []

    def _notify(self, tenant: Tenant, e: Entity) -> None:
        for s in tenant.subscriptions.values():
            if not _path_matches(s.path, e.path):
                continue
            for spec in s.doc["subject"]["entities"]:
                if "type" in spec and spec["type"] != e.type:
                    continue
                if "id" in spec and spec["id"] != e.id:
                    continue
                if "idPattern" in spec and not re.search(spec["idPattern"], e.id):
                    continue
                attrs = s.doc["notification"].get("attrs") or None
                body = {"subscriptionId": s.id,
                        "data": [self.render(e, key_values=s.attrs_format == "keyValues", attrs=attrs)]}
                service = next((k for k, t in self.tenants.items() if t is tenant), "")
                headers = {**s.headers, "Ngsiv2-AttrsFormat": s.attrs_format,
                           "Fiware-ServicePath": e.path}
                if service:
                    headers["Fiware-Service"] = service
                task = asyncio.create_task(self._send(s, body, headers))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
                break

    async def _send(self, s: Subscription, body: dict[str, Any], headers: dict[str, str]) -> None:
        assert self._client is not None
        s.times_sent += 1
        now = iso(dt.datetime.now(dt.UTC))
        try:
            async with self._client.post(s.url, json=body, headers=headers) as resp:
                await resp.read()
                if resp.status < 400:
                    s.last.update(lastNotification=now, lastSuccess=now, lastSuccessCode=resp.status)
                else:
                    s.last.update(lastNotification=now, lastFailure=now,
                                  lastFailureReason=f"HTTP {resp.status}", lastSuccessCode=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            s.last.update(lastNotification=now, lastFailure=now, lastFailureReason=str(exc))
