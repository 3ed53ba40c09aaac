"""Entity models: how one row of a dataset becomes one NGSI-LD entity (normalized form).

A model is a YAML file (``connector/ngsi_ld/models/*.yaml`` ship built in, named
``builtin:<stem>`` or by the standard's title, e.g. ``builtin:AED設置箇所一覧``; an operator's
own file works the same)::

    standard: AED設置箇所一覧          # the rows' layout (mesh/standards), for the docs and checks
    type: AED                         # the entity type (a term of ``context``)
    context: https://…/aed.jsonld     # the model's JSON-LD @context, beside the core context
    vocab: https://…/ns/              # the IRI prefix of the model's terms (expanded names)
    core_terms: [location, name]      # terms the NGSI-LD core context defines (default: location)
    id: "urn:ngsi-ld:AED:{全国地方公共団体コード}-{ID}"   # every {column} must be non-empty
    attributes:
      name: {column: 名称}                                 # a Property; empty cells are left out
      maxCapacity: {column: 想定収容人数, cast: integer}   # integer | number | boolean | string
      targetAreas: {column: 対象となる町会・自治会, split: ";"}
      location: {geo: {lon: 経度, lat: 緯度}}             # a GeoProperty Point
      area: {geojson: 区域}                               # a GeoProperty from GeoJSON (text or object)
      address: {object: {addressRegion: 所在地_都道府県}, const: {addressCountry: JP}}
      hazardTypes: {flags: {災害種別_洪水: flood}}         # the values whose column holds 1
      locatedIn: {relationship: 所在地ID}                 # a Relationship (the cell is a URI)
      country: {value: JP}                                # a constant Property

``cast: boolean`` reads 1/true/可/あり/有/○ as true and 0/false/不可/なし/無/× as false (others:
left out). ``default: V`` is the value of an empty cell (otherwise the attribute is left out).
``digits: true`` keeps only the digits of a code (町字ID ``0008-001`` → ``0008001``).
A row whose id cannot be made is rejected (counted, never an entity).

The model ``flat`` (no file) reads rows as the ``ngsi_ld`` source adapter writes them: ``id``,
``type``, one column per attribute, ``<attr>_lon``/``<attr>_lat`` pairs as GeoProperty Points.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from mesh.errors import InvalidRequest, NotFound

BUILTIN = "builtin:"
CORE_CONTEXT = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CORE_CONTEXTS = frozenset({CORE_CONTEXT,
                           "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld",
                           "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld",
                           "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld",
                           "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld"})
KINDS = ("column", "geo", "geojson", "object", "flags", "relationship", "value")
GEOJSON_TYPES = ("Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon")
TRUE = {"1", "true", "True", "TRUE", "可", "あり", "有", "○", "yes"}
FALSE = {"0", "false", "False", "FALSE", "不可", "なし", "無", "×", "no"}
_TEMPLATE = re.compile(r"\{([^{}]+)\}")
_ATTR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")


def _bad(source: str, message: str, message_ja: str) -> InvalidRequest:
    return InvalidRequest(f"NGSI-LD model {source}: {message}",
                          message_ja=f"NGSI-LD モデル {source}：{message_ja}",
                          code="invalid_ngsi_ld_model")


def _empty(v: Any) -> bool:
    if v is None:
        return True
    kind = type(v)
    if kind is str:
        return not v.strip()
    return kind is float and math.isnan(v)


def _text(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _cast(v: Any, cast: str | None) -> Any:
    if cast is None:
        return v.strip() if isinstance(v, str) else v
    if cast == "string":
        return _text(v)
    if cast == "boolean":
        if isinstance(v, bool):
            return v
        t = _text(v)
        return True if t in TRUE else False if t in FALSE else None
    try:
        number = float(_text(v).replace(",", ""))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    if cast == "integer":
        return int(number) if number.is_integer() else None
    return number


@dataclass(frozen=True)
class AttributeRule:
    name: str
    kind: str
    spec: Any
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The attribute (a Property, GeoProperty or Relationship) from ``row``; None to leave
        it out (nothing to say)."""
        if self.kind == "value":
            return {"type": "Property", "value": self.spec}
        if self.kind == "relationship":
            v = row.get(self.spec)
            return None if _empty(v) else {"type": "Relationship", "object": _text(v)}
        if self.kind == "geo":
            lon, lat = _cast(row.get(self.spec["lon"]), "number"), _cast(row.get(self.spec["lat"]), "number")
            if lon is None or lat is None or not (-180 <= lon <= 180 and -90 <= lat <= 90) \
                    or (lon == 0 and lat == 0):
                return None
            return {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}
        if self.kind == "geojson":
            return _geojson(row.get(self.spec))
        if self.kind == "flags":
            chosen = [value for column, value in self.spec.items()
                      if _cast(row.get(column), "boolean") is True]
            return {"type": "Property", "value": chosen} if chosen else None
        if self.kind == "object":
            value = dict(self.options.get("const") or {})
            for key, column in self.spec.items():
                v = row.get(column)
                if not _empty(v):
                    value[key] = re.sub(r"\D", "", _text(v)) if key in self.options.get("digits_keys", ()) \
                        else _text(v)
            return {"type": "Property", "value": value} if set(value) - set(self.options.get("const") or {}) \
                else None
        v = row.get(self.spec)
        if _empty(v):
            default = self.options.get("default")
            return None if default is None else {"type": "Property", "value": default}
        if not self.options:                   # the common case: the cell as it is
            return {"type": "Property", "value": v.strip() if type(v) is str else v}
        if self.options.get("digits"):
            v = re.sub(r"\D", "", _text(v))
        if "split" in self.options:
            parts = [p.strip() for p in _text(v).split(self.options["split"]) if p.strip()]
            return {"type": "Property", "value": parts} if parts else None
        value = _cast(v, self.options.get("cast"))
        return None if value is None else {"type": "Property", "value": value}


@dataclass(frozen=True)
class EntityModel:
    name: str                      # builtin:aed, a file path, or "flat"
    type: str | None
    context: str | None
    vocab: str | None
    id_template: str | None
    rules: tuple[AttributeRule, ...]
    standard: str | None = None
    core_terms: frozenset[str] = frozenset({"location"})   # terms whose IRI the core context gives

    @property
    def id_columns(self) -> list[str]:
        columns = self.__dict__.get("_id_columns")
        if columns is None:
            columns = _TEMPLATE.findall(self.id_template or "")
            object.__setattr__(self, "_id_columns", columns)
        return columns

    @property
    def contexts(self) -> list[str]:
        return [self.context, CORE_CONTEXT] if self.context else [CORE_CONTEXT]

    def entity(self, row: dict[str, Any]) -> dict[str, Any] | None:
        """The normalized entity of ``row``, or None when its id cannot be made."""
        if self.id_template is None:
            return _flat_entity(row)
        parts = {}
        for column in self.id_columns:
            v = row.get(column)
            if _empty(v):
                return None
            parts[column] = quote(_text(v), safe=":-._~")
        eid = _TEMPLATE.sub(lambda m: parts[m.group(1)], self.id_template)
        if not _URI.match(eid):
            return None
        entity: dict[str, Any] = {"id": eid, "type": self.type}
        for rule in self.rules:
            attr = rule.build(row)
            if attr is not None:
                entity[rule.name] = attr
        return entity

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "standard": self.standard,
                "context": self.context, "attributes": [r.name for r in self.rules]}


def _geojson(v: Any) -> dict[str, Any] | None:
    """A GeoProperty from a GeoJSON geometry (a mapping, or its JSON text); None if it is not one."""
    if isinstance(v, str) and v.lstrip().startswith("{"):
        try:
            v = json.loads(v)
        except ValueError:
            return None
    if isinstance(v, dict) and v.get("type") in GEOJSON_TYPES and isinstance(v.get("coordinates"), list):
        return {"type": "GeoProperty", "value": {"type": v["type"], "coordinates": v["coordinates"]}}
    return None


def _flat_entity(row: dict[str, Any]) -> dict[str, Any] | None:
    eid, etype = row.get("id"), row.get("type")
    if _empty(eid) or _empty(etype):
        return None
    entity: dict[str, Any] = {"id": _text(eid), "type": _text(etype)}
    geo = {k[:-4] for k in row if k.endswith("_lon") and f"{k[:-4]}_lat" in row}
    for key, v in row.items():
        if key in ("id", "type") or _empty(v):
            continue
        base = key[:-4] if key.endswith(("_lon", "_lat")) else None
        if base in geo:
            if key.endswith("_lon") and not _empty(row.get(f"{base}_lat")):
                entity[base] = {"type": "GeoProperty", "value": {
                    "type": "Point", "coordinates": [float(v), float(row[f"{base}_lat"])]}}
            continue
        entity[key] = _geojson(v) or {"type": "Property", "value": v}
    return entity


FLAT = EntityModel("flat", None, None, None, None, ())


def _rule(source: str, name: str, raw: Any) -> AttributeRule:
    if not _ATTR_NAME.match(name) or name in ("id", "type"):
        raise _bad(source, f"attribute name {name!r} is not a plain term (letters, digits, _)",
                   f"属性名 {name!r} が正しくありません")
    if not isinstance(raw, dict):
        raise _bad(source, f"attribute {name}: expected a mapping such as {{column: 名称}}",
                   f"属性 {name} は {{column: 列名}} の形で書きます")
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        raise _bad(source, f"attribute {name}: give exactly one of {', '.join(KINDS)}",
                   f"属性 {name} には {', '.join(KINDS)} のいずれか一つを書きます")
    kind = kinds[0]
    spec = raw[kind]
    options = {k: v for k, v in raw.items() if k != kind}
    unknown = set(options) - {"cast", "split", "digits", "const", "digits_keys", "default", "note"}
    if unknown:
        raise _bad(source, f"attribute {name}: unknown keys {sorted(unknown)}",
                   f"属性 {name} に未知のキー {sorted(unknown)} があります")
    if options.get("cast") not in (None, "integer", "number", "boolean", "string"):
        raise _bad(source, f"attribute {name}: cast must be integer, number, boolean or string",
                   f"属性 {name} の cast は integer・number・boolean・string のいずれかです")
    shapes = {"column": str, "relationship": str, "geojson": str, "geo": dict, "object": dict,
              "flags": dict}
    if kind in shapes and not isinstance(spec, shapes[kind]):
        raise _bad(source, f"attribute {name}: {kind} must be a {shapes[kind].__name__}",
                   f"属性 {name} の {kind} の形が正しくありません")
    if kind == "geo" and set(spec) != {"lon", "lat"}:
        raise _bad(source, f"attribute {name}: geo needs lon and lat columns",
                   f"属性 {name} の geo には lon と lat の列を書きます")
    return AttributeRule(name, kind, spec, options)


def parse_model(doc: Any, source: str) -> EntityModel:
    if not isinstance(doc, dict):
        raise _bad(source, "expected a mapping with type, id and attributes",
                   "type・id・attributes を持つ辞書で書きます")
    for key in ("type", "id", "attributes"):
        if key not in doc:
            raise _bad(source, f"missing {key!r}", f"{key} がありません")
    if not isinstance(doc["type"], str) or not _ATTR_NAME.match(doc["type"]):
        raise _bad(source, "type must be a plain term such as AED", "type は AED のような語で書きます")
    if not isinstance(doc["id"], str) or not _TEMPLATE.search(doc["id"]):
        raise _bad(source, "id must be a URI template with {column} parts, e.g. "
                   "urn:ngsi-ld:AED:{ID}", "id は urn:ngsi-ld:AED:{ID} のような URI の型で書きます")
    attrs = doc["attributes"]
    if not isinstance(attrs, dict) or not attrs:
        raise _bad(source, "attributes must be a non-empty mapping", "attributes が空です")
    rules = tuple(_rule(source, str(name), raw) for name, raw in attrs.items())
    core = doc.get("core_terms", ["location"])
    if not isinstance(core, list) or not all(isinstance(t, str) for t in core):
        raise _bad(source, "core_terms must be a list of attribute names",
                   "core_terms は属性名のリストで書きます")
    return EntityModel(source, doc["type"], doc.get("context"), doc.get("vocab"), doc["id"], rules,
                       doc.get("standard"), frozenset(core))


def builtin_models() -> dict[str, EntityModel]:
    """Every shipped model by its ``builtin:<stem>`` name."""
    out = {}
    folder = resources.files(__name__.rsplit(".", 1)[0]).joinpath("models")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            name = BUILTIN + entry.name.removesuffix(".yaml")
            out[name] = parse_model(yaml.safe_load(entry.read_text(encoding="utf-8")), name)
    return out


def load_model(spec: str, base_dir: Path | None = None) -> EntityModel:
    """``flat``, ``builtin:<stem>``, ``builtin:<standard title>`` or a YAML file's path."""
    if spec == "flat":
        return FLAT
    if spec.startswith(BUILTIN):
        models = builtin_models()
        if spec in models:
            return models[spec]
        title = spec[len(BUILTIN):]
        for model in models.values():
            if model.standard == title:
                return model
        raise NotFound(f"no built-in NGSI-LD model {spec}; shipped: {', '.join(models)}",
                       message_ja=f"組み込みの NGSI-LD モデル {spec} はありません",
                       code="unknown_ngsi_ld_model")
    path = Path(spec)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _bad(spec, f"cannot be read: {type(exc).__name__}", "読み込めません") from None
    return parse_model(doc, spec)
