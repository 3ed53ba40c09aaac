"""Dataset descriptions (DESIGN §5): the one model the connector validates before publishing
and the registry validates again on receipt.

A description is a YAML or JSON document. Everything except ``source`` (the adapter's
configuration, which may hold paths and credentials references) is published to the registry.
``validate_description`` returns every problem at once, field by field, so a municipal operator
can fix a file in one pass; ``parse_description`` raises ``InvalidRequest`` carrying that list.

A description declares the standard layout it follows either as ``standard_type`` (a 2026
area-data model name, as always) or as ``standard``: ``"公衆トイレ一覧@自治体標準"`` or
``{layout, edition, missingValues}`` (``mesh.standards.parse_standard_ref``). The published form
carries ``standard`` as ``{layout, edition[, missingValues]}`` with the edition's id;
``declared_standard`` reads either form.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import yaml

from mesh.errors import InvalidRequest, NotFound
from mesh.ids import validate_corporate_number, validate_local_government_code
from mesh.policy import Policy, PolicyError, parse_policy

MAX_FILE_BYTES = 1024 * 1024
ID_PATTERN = re.compile(r"\A[a-z0-9][a-z0-9._-]{2,99}\Z")
THEMES = ("観光", "防災", "子育て", "医療・福祉", "交通", "教育", "環境", "行政", "産業・経済",
          "文化・スポーツ", "都市計画・インフラ", "人口・統計", "農林水産", "健康", "防犯・安全")
CLASSIFICATIONS = {
    "personal": "個人情報",
    "pseudonymised": "仮名加工情報",
    "anonymised": "匿名加工情報",
    "personally_related": "個人関連情報",
    "non_personal": "非個人情報",
}
PERSONAL_CLASSES = {"personal", "pseudonymised", "personally_related"}
MANAGEMENT_MODES = ("external", "internal")
FREQUENCIES = ("realtime", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly",
               "irregular")
ACCESS = ("open", "contract")
TABLE_SCHEMA_TYPES = {"string", "number", "integer", "boolean", "object", "array", "date",
                      "time", "datetime", "year", "yearmonth", "duration", "geopoint",
                      "geojson", "any"}
LIMITS = {"title": 200, "description": 10_000, "keyword": 50, "keywords": 50, "license": 100,
          "fields": 500, "spatial": 2000, "offers": 50}
PUBLISHED_KEYS = ("id", "publisher", "title", "description", "themes", "keywords",
                  "standard_type", "standard", "schema", "classification", "management",
                  "update_frequency", "spatial", "license", "access", "offers", "subject_field",
                  "source_check")
STANDARD_KEYS = ("layout", "edition", "missingValues")   # a ``standard`` declaration's keys
MISSING_VALUES_LIMIT = 50
SOURCE_CHECKS = ("passed", "deferred")   # set by the publishing connector (connector/datasets/check.py)


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    message_ja: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message, "message_ja": self.message_ja}


_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document(data: bytes, *, name: str = "dataset file") -> Any:
    """Parse YAML (a superset of JSON) safely; raise ``InvalidRequest`` with the line.

    A JSON object (what the wire carries: ``canonical_json``) is read with the json module,
    some fifty times faster than a YAML parser written in Python; anything else, or JSON that
    json refuses, goes to the YAML parser (libyaml's when PyYAML has it)."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidRequest(f"{name} is {len(data)} bytes; the limit is {MAX_FILE_BYTES}",
                             message_ja="データセット定義ファイルが大きすぎます（上限1MB）")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{name} is not UTF-8: {exc}",
                             message_ja="データセット定義ファイルはUTF-8で保存してください") from None
    try:
        if text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                pass                # YAML's flow style is laxer than JSON: let it decide
        return yaml.load(text, Loader=_SAFE_LOADER)
    except RecursionError:
        raise InvalidRequest(f"{name} is nested too deeply",
                             message_ja="定義ファイルの入れ子が深すぎます") from None
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{name} is not valid YAML/JSON: {exc}",
                             message_ja="定義ファイルのYAML/JSONの書式が正しくありません") from None


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, message: str, message_ja: str) -> None:
        self.errors.append(FieldError(field, message, message_ja))

    def text(self, doc: dict, key: str, *, required: bool, limit: int,
             where: str | None = None) -> str | None:
        where = where or key
        value = doc.get(key)
        if value is None:
            if required:
                self.add(where, "is required", "必須項目です")
            return None
        if not isinstance(value, str):
            self.add(where, f"must be a string, not {type(value).__name__}", "文字列で指定してください")
            return None
        if required and not value.strip():
            self.add(where, "must not be empty", "空にできません")
        if len(value) > limit:
            self.add(where, f"is {len(value)} characters; the limit is {limit}",
                     f"{limit}文字以内にしてください（{len(value)}文字）")
        return value

    def multilingual(self, doc: dict, key: str, limit: int) -> dict[str, str] | None:
        value = doc.get(key)
        if isinstance(value, str):  # a bare string is Japanese
            value = {"ja": value}
        if not isinstance(value, dict):
            self.add(key, "is required as {ja: ..., en: ...}" if value is None
                     else f"must be a mapping {{ja, en}}, not {type(value).__name__}",
                     "{ja: 日本語, en: 英語} の形式で指定してください")
            return None
        unknown = set(value) - {"ja", "en"}
        if unknown:
            self.add(key, f"unknown languages {sorted(unknown)}; use ja and en",
                     "言語は ja と en のみ指定できます")
        out = {}
        for lang in ("ja", "en"):
            text = self.text(value, lang, required=lang == "ja", limit=limit, where=f"{key}.{lang}")
            if text is not None:
                out[lang] = text
        return out

    def choice(self, doc: dict, key: str, options: tuple[str, ...] | dict, *, default=None):
        value = doc.get(key, default)
        if value not in options:
            allowed = ", ".join(options)
            self.add(key, f"must be one of {allowed}; got {value!r}",
                     f"次のいずれかを指定してください: {allowed}")
            return None
        return value

    def string_list(self, doc: dict, key: str, *, limit_items: int, limit_len: int) -> list[str]:
        value = doc.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(key, "must be a list of strings", "文字列のリストで指定してください")
            return []
        if len(value) > limit_items:
            self.add(key, f"has {len(value)} items; the limit is {limit_items}",
                     f"{limit_items}件以内にしてください")
        for i, v in enumerate(value):
            if len(v) > limit_len or not v.strip():
                self.add(f"{key}[{i}]", f"must be 1-{limit_len} characters",
                         f"1〜{limit_len}文字にしてください")
        return value


def check_table_schema(schema: Any, c: _Checker, prefix: str = "schema") -> None:
    if not isinstance(schema, dict):
        c.add(prefix, "must be a Table Schema mapping with 'fields'",
              "Table Schema（fields を持つマッピング）で指定してください")
        return
    fields = schema.get("fields")
    if not isinstance(fields, list) or not fields:
        c.add(f"{prefix}.fields", "must be a non-empty list", "1件以上のリストにしてください")
        return
    if len(fields) > LIMITS["fields"]:
        c.add(f"{prefix}.fields", f"has {len(fields)} fields; the limit is {LIMITS['fields']}",
              "項目数が多すぎます")
    names: set[str] = set()
    for i, f in enumerate(fields):
        where = f"{prefix}.fields[{i}]"
        if not isinstance(f, dict):
            c.add(where, "must be a mapping with name and type", "name と type を指定してください")
            continue
        name = f.get("name")
        if not isinstance(name, str) or not name.strip():
            c.add(f"{where}.name", "is required", "項目名は必須です")
        elif name in names:
            c.add(f"{where}.name", f"duplicate field name {name!r}", f"項目名 {name} が重複しています")
        else:
            names.add(name)
        ftype = f.get("type", "string")
        if ftype not in TABLE_SCHEMA_TYPES:
            c.add(f"{where}.type", f"unknown Table Schema type {ftype!r}",
                  f"不明な型です: {ftype}")
        if "constraints" in f and not isinstance(f["constraints"], dict):
            c.add(f"{where}.constraints", "must be a mapping", "マッピングで指定してください")
    pk = schema.get("primaryKey")
    if pk is not None:
        keys = [pk] if isinstance(pk, str) else pk
        if not isinstance(keys, list) or any(k not in names for k in keys):
            c.add(f"{prefix}.primaryKey", "must name fields of the schema",
                  "主キーはスキーマの項目名で指定してください")


def _check_spatial(doc: dict, c: _Checker) -> list[str]:
    codes = c.string_list(doc, "spatial", limit_items=LIMITS["spatial"], limit_len=6)
    for i, code in enumerate(codes):
        try:
            validate_local_government_code(code)
        except InvalidRequest as exc:
            c.add(f"spatial[{i}]", exc.message, exc.message_ja or "")
    return codes


def _check_publisher(doc: dict, c: _Checker) -> None:
    pid = doc.get("publisher")
    if not isinstance(pid, str):
        c.add("publisher", "is required (the publishing participant's id)",
              "公開者（参加者ID）は必須です")
        return
    try:
        if len(pid) == 6:
            validate_local_government_code(pid)
        else:
            validate_corporate_number(pid)
    except InvalidRequest as exc:
        c.add("publisher", exc.message, exc.message_ja or "")


def _check_offers(doc: dict, c: _Checker, access: str | None) -> dict[int, Policy]:
    """Checks every offer; returns the valid offers' parsed policies by position."""
    policies: dict[int, Policy] = {}
    offers = doc.get("offers", [])
    if not isinstance(offers, list):
        c.add("offers", "must be a list", "リストで指定してください")
        return policies
    if len(offers) > LIMITS["offers"]:
        c.add("offers", f"at most {LIMITS['offers']} offers", "オファーが多すぎます")
    seen = set()
    for i, offer in enumerate(offers):
        if not isinstance(offer, dict) or not isinstance(offer.get("id"), str) \
                or not ID_PATTERN.match(offer["id"]):
            c.add(f"offers[{i}].id", "each offer needs an id (3-100 of a-z 0-9 . _ -)",
                  "オファーには id（半角英小文字・数字等3〜100文字）が必要です")
            continue
        if offer["id"] in seen:
            c.add(f"offers[{i}].id", f"duplicate offer id {offer['id']!r}", "オファーIDが重複しています")
        seen.add(offer["id"])
        if "policy" not in offer:
            c.add(f"offers[{i}].policy", "each offer needs a policy (see docs/policies.md)",
                  "オファーには利用ポリシーが必要です")
            continue
        try:
            policies[i] = parse_policy(offer["policy"])
        except PolicyError as exc:
            c.add(f"offers[{i}].policy.{exc.path}",
                  f"offer {offer['id']!r}: {exc.message.split(': ', 1)[-1]}",
                  f"オファー {offer['id']}：{(exc.message_ja or '').split(': ', 1)[-1]}")
    if access == "contract" and not offers:
        c.add("offers", "a contract dataset needs at least one offer",
              "契約型のデータセットには1件以上のオファーが必要です")
    return policies


def validate_description(doc: Any, *, standard_check=None) -> list[FieldError]:
    """Every problem of a dataset description, field by field (empty list: valid).

    ``standard_check(standard, schema) -> list[(column, message, message_ja)]`` lets the
    caller compare the schema with the declared layout: ``standard`` is the ``standard_type``
    as written (a 2026 model) or, for a ``standard`` declaration, ``layout@edition``.
    """
    c = _Checker()
    if not isinstance(doc, dict):
        c.add("(document)", "must be a mapping of fields", "項目のマッピングで記述してください")
        return c.errors
    ident = doc.get("id")
    if not isinstance(ident, str) or not ID_PATTERN.match(ident):
        c.add("id", "is required: 3-100 characters of a-z 0-9 . _ - starting with a letter or "
              "digit", "id は必須です（半角英小文字・数字・. _ - の3〜100文字）")
    _check_publisher(doc, c)
    c.multilingual(doc, "title", LIMITS["title"])
    c.multilingual(doc, "description", LIMITS["description"])
    themes = c.string_list(doc, "themes", limit_items=len(THEMES), limit_len=20)
    if not themes:
        c.add("themes", "at least one theme (分野) is required", "分野を1つ以上指定してください")
    for i, theme in enumerate(themes):
        if theme not in THEMES:
            c.add(f"themes[{i}]", f"unknown theme {theme!r}; use one of {', '.join(THEMES)}",
                  f"不明な分野です: {theme}（{'、'.join(THEMES)} から選んでください）")
    c.string_list(doc, "keywords", limit_items=LIMITS["keywords"], limit_len=LIMITS["keyword"])
    standard = doc.get("standard_type")
    if standard is not None and not isinstance(standard, str):
        c.add("standard_type", "must be a string", "文字列で指定してください")
        standard = None
    if doc.get("standard") is not None:
        if standard is not None:
            c.add("standard", "declare either standard or standard_type, not both",
                  "standard と standard_type はどちらか一方だけ指定してください")
        declared = _check_standard(doc["standard"], c)
        standard = declared.label if declared is not None else ""   # "": reported already
    if "schema" in doc or standard is None:
        check_table_schema(doc.get("schema"), c)
    if standard and standard_check is not None and not any(e.field.startswith("schema")
                                                           for e in c.errors):
        for field, message, message_ja in standard_check(standard, doc.get("schema")):
            c.add(field, message, message_ja)
    c.choice(doc, "classification", CLASSIFICATIONS, default="non_personal")
    c.choice(doc, "management", MANAGEMENT_MODES, default="external")
    c.choice(doc, "update_frequency", FREQUENCIES, default="irregular")
    _check_spatial(doc, c)
    c.text(doc, "license", required=True, limit=LIMITS["license"])
    access = c.choice(doc, "access", ACCESS, default="open")
    policies = _check_offers(doc, c, access)
    _check_personal(doc, c, policies)
    check = doc.get("source_check")
    if check is not None and (not isinstance(check, dict) or check.get("status") not in SOURCE_CHECKS
                              or not all(isinstance(v, str | int) for v in check.values())):
        c.add("source_check", f"must be {{status: {' or '.join(SOURCE_CHECKS)}, ...}}",
              "データソース確認の記録の形式が正しくありません")
    if "source" in doc and not isinstance(doc["source"], dict):
        c.add("source", "must be a mapping (adapter configuration)",
              "アダプタ設定のマッピングで指定してください")
    unknown = set(doc) - set(PUBLISHED_KEYS) - {"source", "personal"}  # personal is derived
    for key in sorted(unknown):
        c.add(str(key), "unknown field", "不明な項目です")
    return c.errors


def _check_personal(doc: dict[str, Any], c: _Checker, policies: dict[int, Policy]) -> None:
    """A personal dataset (個人情報) names its subject-id column (the platform's local resident id)
    and offers it only under consent: every permission of every offer carries ``consent eq true``."""
    subject = doc.get("subject_field")
    if subject is not None:
        names = [f.get("name") for f in (doc.get("schema") or {}).get("fields", []) if isinstance(f, dict)]
        if not isinstance(subject, str) or not subject:
            c.add("subject_field", "must be a column name", "列名で指定してください")
        elif names and subject not in names:
            c.add("subject_field", f"{subject!r} is not a field of the schema",
                  f"{subject} はスキーマにない列です")
    if doc.get("classification") != "personal":
        return
    if subject is None:
        c.add("subject_field", "a personal dataset must name its subject-id column (the local "
              "resident id)", "個人情報のデータセットは本人を識別する列（住民ID）を指定してください")
    for i, policy in policies.items():  # invalid policies are already reported
        for j, permission in enumerate(policy.permissions):
            if not permission.requires_consent:
                c.add(f"offers[{i}].policy.permissions[{j}]",
                      "offers of personal data must require consent (consent eq true)",
                      "個人情報の提供条件には本人同意（consent eq true）が必要です")


def parse_description(doc: Any, *, standard_check=None) -> dict[str, Any]:
    """The normalised published form of a valid description; ``InvalidRequest`` listing every
    field error otherwise."""
    errors = validate_description(doc, standard_check=standard_check)
    if errors:
        lines = "; ".join(f"{e.field}: {e.message}" for e in errors[:20])
        raise InvalidRequest(f"dataset description has {len(errors)} error(s): {lines}",
                             message_ja=f"データセット定義に {len(errors)} 件の誤りがあります",
                             code="invalid_dataset",
                             details={"errors": [e.to_json() for e in errors]})
    out = {key: doc[key] for key in PUBLISHED_KEYS if key in doc}
    if out.get("standard") is not None:
        out["standard"] = declared_standard(out)   # one published shape: {layout, edition, …}
    out = with_standard_schema(out)
    for key in ("title", "description"):
        if isinstance(out[key], str):
            out[key] = {"ja": out[key]}
    out.setdefault("classification", "non_personal")
    out.setdefault("management", "external")
    out.setdefault("update_frequency", "irregular")
    out.setdefault("access", "open")
    out.setdefault("keywords", [])
    out.setdefault("spatial", [])
    out.setdefault("offers", [])
    out["personal"] = out["classification"] in PERSONAL_CLASSES
    return out


def standard_errors(standard_type: str, schema: dict | None) -> list[tuple[str, str, str]]:
    """(field, message, message_ja) for a schema that does not fit its declared standard
    dataset type: a 2026 model name (``standard_type``) or ``layout@edition`` (a ``standard``
    declaration). Only missing required columns, type clashes and duplicates are errors;
    extra or missing optional columns and order are not. No schema means the standard's own."""
    from mesh import standards

    try:
        standards.get_standard(standard_type)
    except NotFound as exc:
        return [("standard" if "@" in standard_type else "standard_type", exc.message,
                 exc.message_ja or "")]
    if schema is None:
        return []
    return [(f"schema[{m.column}]", m.message, m.message_ja)
            for m in standards.check_table_schema(standard_type, schema) if m.is_error]


def _check_standard(value: Any, c: _Checker) -> Any:
    """A ``standard`` declaration: ``"layout@edition"`` or ``{layout, edition, missingValues}``.
    Returns the :class:`mesh.standards.StandardRef`, or None after reporting what is wrong."""
    from mesh import standards
    from mesh.errors import AreameshError

    if isinstance(value, str):
        try:
            return standards.parse_standard_ref(value)
        except AreameshError as exc:
            c.add("standard", exc.message, exc.message_ja or "")
            return None
    if not isinstance(value, dict):
        c.add("standard", "must be 'layout@edition' or {layout, edition, missingValues}",
              "「レイアウト@版」または {layout, edition, missingValues} で指定してください")
        return None
    for key in sorted(set(value) - set(STANDARD_KEYS), key=str):
        c.add(f"standard.{key}", "unknown field; use layout, edition and missingValues",
              "不明な項目です（layout、edition、missingValues が使えます）")
    ok = True
    for key, required in (("layout", True), ("edition", False)):
        if (required or value.get(key) is not None) and (
                not isinstance(value.get(key), str) or not value[key].strip()):
            c.add(f"standard.{key}", "is required as a string" if required else "must be a string",
                  "文字列で指定してください（必須）" if required else "文字列で指定してください")
            ok = False
    if not ok:
        return None
    try:
        ref = standards.parse_standard_ref({k: value[k] for k in ("layout", "edition")
                                            if value.get(k) is not None})
    except AreameshError as exc:
        where = "standard.edition" if "known_editions" in exc.details else "standard.layout"
        c.add(where, exc.message, exc.message_ja or "")
        return None
    if "missingValues" in value:
        _check_missing_values(value["missingValues"], standards.get_standard(*ref), c)
    return ref


def _check_missing_values(value: Any, layout: Any, c: _Checker) -> None:
    """``missingValues``: placeholders read as blank, a list for every column or a mapping from
    a column of the layout (or ``*``) to a list."""
    from mesh.standards import normalize_header

    where = "standard.missingValues"

    def strings(v: Any, at: str) -> None:
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v) \
                or len(v) > MISSING_VALUES_LIMIT or any(len(x) > 50 for x in v):
            c.add(at, f"must be a list of at most {MISSING_VALUES_LIMIT} strings (50 characters "
                  "each)", f"{MISSING_VALUES_LIMIT}件以内の文字列（各50文字以内）のリストで指定してください")

    if isinstance(value, list):
        strings(value, where)
        return
    if not isinstance(value, dict):
        c.add(where, "must be a list of strings or a mapping from column to list",
              "文字列のリスト、または列名から文字列のリストへのマッピングで指定してください")
        return
    columns = {normalize_header(n) for n in layout.column_names}
    for column, values in value.items():
        if column != "*" and normalize_header(str(column)) not in columns:
            c.add(f"{where}.{column}", f"{column!r} is not a column of {layout.label}",
                  f"「{column}」は {layout.label} の列ではありません")
        strings(values, f"{where}.{column}")


def declared_standard(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The layout a (valid, published) description declares, as ``{layout, edition}`` plus its
    ``missingValues`` when given: from ``standard``, or from ``standard_type`` (a 2026 area-data
    model name, the default edition). None when it declares none."""
    from mesh import standards
    from mesh.errors import AreameshError

    value = doc.get("standard")
    if value is None and isinstance(doc.get("standard_type"), str):
        value = {"layout": doc["standard_type"], "edition": standards.DEFAULT_EDITION}
    if value is None:
        return None
    try:
        if isinstance(value, dict):
            ref = standards.parse_standard_ref({k: value[k] for k in ("layout", "edition")
                                                if value.get(k) is not None})
        else:
            ref = standards.parse_standard_ref(value)
    except AreameshError:
        return None
    out: dict[str, Any] = {"layout": ref.layout, "edition": ref.edition}
    if isinstance(value, dict) and value.get("missingValues") is not None:
        out["missingValues"] = value["missingValues"]
    return out


def with_standard_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """Fill in the declared layout's Table Schema when the description gives none."""
    if doc.get("schema") is None and (doc.get("standard_type") or doc.get("standard")):
        from mesh import standards

        declared = declared_standard(doc)
        if declared is not None:
            doc = {**doc, "schema": standards.get_standard(declared["layout"],
                                                           declared["edition"]).table_schema()}
    return doc


def canonical_json(doc: Any) -> bytes:
    """Stable bytes for a JSON document (sorted keys, no spaces, UTF-8, NFC strings)."""
    def nfc(v: Any) -> Any:
        if isinstance(v, str):
            return unicodedata.normalize("NFC", v)
        if isinstance(v, dict):
            return {nfc(k): nfc(x) for k, x in v.items()}
        if isinstance(v, list):
            return [nfc(x) for x in v]
        return v

    return json.dumps(nfc(doc), ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                      allow_nan=False).encode()

