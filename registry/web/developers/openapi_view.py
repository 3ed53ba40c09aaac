"""An OpenAPI 3.1 document as something a template can show: operations grouped, each with
its parameters, request body, responses and door; component schemas as field tables.

Only what the registry's and the connector's documents use is understood (``$ref`` to
``#/components/schemas``, objects, arrays, enums, consts, the usual constraints); anything else
shows as its type name. References are linked, never expanded, so a recursive schema cannot
loop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Neither document has tags: operations are grouped by path, first match wins.
GROUPS = [("/api/v1/datasets", "catalog"), ("/catalog.jsonld", "catalog"),
          ("/api/3/action/", "ckan"), ("/api/action/", "ckan"),
          ("/api/v1/participants", "trust"), ("/api/v1/trust-bundle", "trust"),
          ("/api/v1/crl", "trust"), ("/api/v1/usage", "usage"), ("/api/v1/duties", "usage"),
          ("/api/v1/ledger/", "ledger"), ("/api/v1/admin/", "admin"),
          ("/api/v1/status", "node"), ("/api/v1/peers", "node"),
          ("/api/v1/residents/", "residents"), ("/", "server")]
_CONSTRAINTS = ("format", "minimum", "maximum", "minLength", "maxLength", "pattern", "default")


@dataclass
class SchemaInfo:
    """A schema in one line: its type text, the component it refers to, its constraints."""

    type: str
    ref: str | None = None
    constraints: list[str] = field(default_factory=list)


@dataclass
class Field:
    name: str                      # a path: period.label, results[].id, facets.*
    schema: SchemaInfo
    required: bool
    description: str = ""


@dataclass
class Param:
    name: str
    location: str                  # path, query, header, cookie
    required: bool
    schema: SchemaInfo
    description: str = ""
    enum: list[str] = field(default_factory=list)   # the values, for a <select>


@dataclass
class Content:
    """A request or response body: its media types and the schema of the first one."""

    media_types: list[str]
    schema: SchemaInfo | None
    fields: list[Field]


@dataclass
class Response:
    code: str
    description: str
    content: Content | None


@dataclass
class Operation:
    method: str                    # upper case
    path: str
    anchor: str
    summary: str
    description: str
    params: list[Param]
    body: Content | None
    body_required: bool
    responses: list[Response]
    security: list[list[str]]      # alternatives, each a list of scheme names; [] is none
    door: str | None               # the door the server enforces, when known
    group: str


@dataclass
class Group:
    key: str
    operations: list[Operation]


@dataclass
class SecurityScheme:
    name: str
    type: str
    scheme: str
    description: str


@dataclass
class ApiDoc:
    title: str
    version: str
    description: str
    groups: list[Group]
    schemas: list[tuple[str, SchemaInfo, list[Field]]]
    security_schemes: list[SecurityScheme]

    @property
    def operations(self) -> list[Operation]:
        return [op for g in self.groups for op in g.operations]


def anchor(method: str, path: str) -> str:
    """A stable fragment id for an operation: op-get-api-v1-datasets-id."""
    return "op-" + method.lower() + "-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


def schema_anchor(name: str) -> str:
    return "schema-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def group_of(path: str, tags: list[str] | None = None) -> str:
    if tags:
        return tags[0]
    return next(key for prefix, key in GROUPS if path.startswith(prefix))


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def schema_info(schema: dict[str, Any]) -> SchemaInfo:
    if not isinstance(schema, dict) or not schema:
        return SchemaInfo("any")
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return SchemaInfo(name, ref=name)
    constraints = [f"{key}: {_show(schema[key]) if key in ('default',) else schema[key]}"
                   for key in _CONSTRAINTS if key in schema]
    if "enum" in schema:
        constraints.insert(0, "enum: " + ", ".join(_show(v) for v in schema["enum"]))
    if "const" in schema:
        return SchemaInfo("const " + _show(schema["const"]), constraints=constraints)
    kind = schema.get("type")
    if isinstance(kind, list):
        text = " | ".join(str(k) for k in kind)
    elif kind == "array":
        inner = schema_info(schema.get("items", {}))
        return SchemaInfo(f"array<{inner.type}>", ref=inner.ref,
                          constraints=constraints + inner.constraints)
    elif kind:
        text = str(kind)
    elif "enum" in schema:
        text = "enum"
    else:
        text = "any"
    return SchemaInfo(text, constraints=constraints)


def fields_of(schema: dict[str, Any], prefix: str = "", depth: int = 0) -> list[Field]:
    """The properties of an inline object schema, nested ones flattened with dotted names."""
    if not isinstance(schema, dict) or "$ref" in schema or depth > 4:
        return []
    rows: list[Field] = []
    required = set(schema.get("required", []))
    for name, sub in (schema.get("properties") or {}).items():
        rows.append(Field(prefix + name, schema_info(sub), name in required,
                          str(sub.get("description", "")) if isinstance(sub, dict) else ""))
        rows += _nested(sub, prefix + name, depth)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        rows.append(Field(prefix + "*", schema_info(extra), False,
                          str(extra.get("description", ""))))
        rows += _nested(extra, prefix + "*", depth)
    return rows


def _nested(sub: Any, name: str, depth: int) -> list[Field]:
    if not isinstance(sub, dict):
        return []
    if sub.get("type") == "array" and isinstance(sub.get("items"), dict):
        return fields_of(sub["items"], name + "[].", depth + 1)
    return fields_of(sub, name + ".", depth + 1)


def content_of(content: dict[str, Any] | None) -> Content | None:
    if not content:
        return None
    media_types = list(content)
    schema = (content[media_types[0]] or {}).get("schema")
    if schema is None:
        return Content(media_types, None, [])
    return Content(media_types, schema_info(schema), fields_of(schema))


def _params(path_item: dict[str, Any], op: dict[str, Any]) -> list[Param]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for p in [*path_item.get("parameters", []), *op.get("parameters", [])]:
        merged[(p["name"], p["in"])] = p             # an operation's own overrides the path's
    params = []
    for p in merged.values():
        schema = p.get("schema", {})
        params.append(Param(p["name"], p["in"], bool(p.get("required") or p["in"] == "path"),
                            schema_info(schema), str(p.get("description", "")),
                            [str(v) for v in schema.get("enum", [])]))
    return params


def operation(method: str, path: str, path_item: dict[str, Any], op: dict[str, Any],
              door: str | None) -> Operation:
    body = op.get("requestBody") or {}
    responses = [Response(str(code), str(r.get("description", "")), content_of(r.get("content")))
                 for code, r in sorted(op.get("responses", {}).items())]
    return Operation(method.upper(), path, anchor(method, path), str(op.get("summary", "")),
                     str(op.get("description", "")), _params(path_item, op),
                     content_of(body.get("content")), bool(body.get("required")), responses,
                     [sorted(alt) for alt in op.get("security", [])], door,
                     group_of(path, op.get("tags")))


def api_doc(document: dict[str, Any], doors: dict[tuple[str, str], str] | None = None) -> ApiDoc:
    """The document as groups of operations. ``doors`` maps (METHOD, path) to the name of the
    door the server enforces (mesh.http_auth); it is shown beside the document's security."""
    doors = doors or {}
    groups: dict[str, list[Operation]] = {}
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                op = operation(method, path, item, item[method], doors.get((method.upper(), path)))
                groups.setdefault(op.group, []).append(op)
    order = [key for _, key in GROUPS]
    ordered = sorted(groups.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order
                                                     else len(order), kv[0]))
    components = document.get("components", {})
    schemas = [(name, schema_info({k: v for k, v in s.items() if k != "properties"}),
                fields_of(s)) for name, s in components.get("schemas", {}).items()]
    schemes = [SecurityScheme(name, str(s.get("type", "")), str(s.get("scheme", "")),
                              str(s.get("description", "")))
               for name, s in components.get("securitySchemes", {}).items()]
    info = document.get("info", {})
    return ApiDoc(str(info.get("title", "")), str(info.get("version", "")),
                  str(info.get("description", "")),
                  [Group(key, ops) for key, ops in ordered], schemas, schemes)
