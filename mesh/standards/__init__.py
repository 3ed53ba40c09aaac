"""Standard column layouts of Japanese local-government open data, as Frictionless Table Schemas.

Each JSON file beside this module describes one dataset type (AED設置箇所一覧, 公共施設一覧, ...):
its official Japanese column headers in the official order, their English names, Table Schema
types and whether a value is required. The checkers below compare a dataset's own Table Schema,
or just its CSV header row, against that standard, column by column.

Sources, credited in each file's ``source`` field:

* Seven layouts follow the Digital Agency's (デジタル庁) area-data standard data model,
  「エリアデータ活用のためのデータモデル（実践ガイドブック：参考ドキュメント）」 of 2026-09-04, published in
  the GitHub repository digital-go-jp/area-data-coordination under 公共データ利用規約（第1.0版）
  (Public Data License 1.0, compatible with CC BY 4.0). Its model tables are aligned with GIF and the
  自治体標準オープンデータセット but are not a transcription of that spreadsheet.
* 指定緊急避難場所一覧 falls back to the 2019 推奨データセット layout (政府CIOポータル), read from the
  transcription in NEC-FIWARE/smart-data-models, because no official text of the newer layout could be
  read; its file says so.

Those eight files beside this module form the edition ``エリアデータ標準データモデル-2026`` and are what
:func:`get_standard` returns for a bare name, as it always has. Two older editions, the layouts real
municipal files are published in, live in sub-folders (see :data:`EDITIONS`):

* ``suishou2019/``: the 14 layouts of the 2019 推奨データセット (都道府県コード又は市区町村コード, NO, …),
  converted from the transcription in NEC-FIWARE/smart-data-models, folder ``cio/``.
* ``jichitai/``: the 自治体標準オープンデータセット layouts whose published header could be verified
  (全国地方公共団体コード, ID, …, 所在地_連結表記, …); each file cites where its header comes from.

A layout is named by its Japanese title and edition; :func:`detect_layout` finds both from a CSV
header, :func:`parse_standard_ref` reads a dataset's declaration (``公衆トイレ一覧``,
``公衆トイレ一覧@自治体標準オープンデータセット`` or ``{"layout": …, "edition": …}``).

The Table Schema form (types, ``constraints``, ``primaryKey``) is this project's rendering of those
definitions. Nothing here needs a third-party package.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

from mesh.errors import InvalidRequest, NotFound

__all__ = [
    "DEFAULT_EDITION",
    "EDITIONS",
    "KINDS",
    "STANDARD_TYPES",
    "TABLE_SCHEMA_TYPES",
    "ColumnMismatch",
    "LayoutMatch",
    "StandardField",
    "StandardRef",
    "StandardSchema",
    "check_csv_header",
    "check_table_schema",
    "detect_layout",
    "editions",
    "get_standard",
    "layouts",
    "normalize_header",
    "parse_standard_ref",
    "validate_table_schema",
]

#: The field types of the Frictionless Table Schema specification.
TABLE_SCHEMA_TYPES = frozenset({
    "string", "number", "integer", "boolean", "object", "array", "date", "time", "datetime",
    "year", "yearmonth", "duration", "geopoint", "geojson", "any",
})

#: Mismatch kinds. ``missing``, ``type`` and ``duplicate`` break conformance; the others are
#: deviations a reader should know about: the standards keep every column even when unused
#: (``missing_optional``), allow added columns (``extra``) and fix an order (``order``).
KINDS = ("missing", "type", "duplicate", "missing_optional", "extra", "order")
_ERROR_KINDS = frozenset({"missing", "type", "duplicate"})
_NAME_ID = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Edition:
    """One generation of standard layouts: its id, Japanese and English titles and short aliases."""

    id: str
    title: str
    title_en: str
    folder: str  # sub-folder of this package holding its JSON files ("" for the package itself)
    aliases: tuple[str, ...] = ()


#: The editions shipped, oldest first. A dataset names one by id or alias.
EDITIONS: tuple[Edition, ...] = (
    Edition("推奨データセット-2019", "推奨データセット（2019年）", "Recommended datasets (2019)",
            "suishou2019", ("推奨データセット", "2019", "suishou2019")),
    Edition("自治体標準オープンデータセット", "自治体標準オープンデータセット",
            "Standard municipal open datasets", "jichitai", ("自治体標準", "jichitai")),
    Edition("エリアデータ標準データモデル-2026", "エリアデータ活用のためのデータモデル（2026年）",
            "Area-data standard data models (2026)", "",
            ("エリアデータ標準データモデル", "2026", "area2026")),
)
#: The edition a bare layout name (today's ``standard_type``) refers to.
DEFAULT_EDITION = "エリアデータ標準データモデル-2026"


def normalize_header(name: str) -> str:
    """The form column names are compared in: NFKC (full-width ``ＵＲＬ`` is ``URL``), no BOM, trimmed."""
    return unicodedata.normalize("NFKC", name).replace("\ufeff", "").strip()


@dataclass(frozen=True)
class StandardField:
    """One column of a standard: official header, English name, Table Schema type and constraints."""

    name: str
    title_en: str
    type: str
    required: bool
    format: str | None = None
    enum: tuple[str, ...] = ()
    pattern: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class StandardSchema:
    """A standard dataset layout loaded from one of the package's JSON files."""

    name: str
    title: str
    title_en: str
    source: str
    description: str
    fields: tuple[StandardField, ...]
    primary_key: tuple[str, ...]
    table_schema_json: str
    edition: str = DEFAULT_EDITION

    @property
    def label(self) -> str:
        """``title@edition``, the string form a dataset declares this layout with."""
        return f"{self.title}@{self.edition}"

    @property
    def column_names(self) -> list[str]:
        """The official headers in the official order."""
        return [f.name for f in self.fields]

    @property
    def required_columns(self) -> list[str]:
        """Headers of the columns whose value is required."""
        return [f.name for f in self.fields if f.required]

    def field(self, name: str) -> StandardField:
        """The column called ``name`` (compared after :func:`normalize_header`); ``KeyError`` if none."""
        key = normalize_header(name)
        for f in self.fields:
            if normalize_header(f.name) == key:
                return f
        raise KeyError(name)

    def table_schema(self) -> dict[str, Any]:
        """A fresh copy of the shipped Table Schema document."""
        return json.loads(self.table_schema_json)


@dataclass(frozen=True)
class ColumnMismatch:
    """One way a dataset's columns differ from its standard.

    ``column`` is the official header, or the dataset's own header for ``extra`` and ``duplicate``.
    ``expected``/``actual`` are Table Schema types for ``type`` and 1-based column positions
    (standard / dataset) for the other kinds, ``None`` where there is nothing to show.
    """

    column: str
    kind: str
    expected: str | None
    actual: str | None
    message: str
    message_ja: str

    @property
    def is_error(self) -> bool:
        """Whether this mismatch breaks conformance (missing required column, wrong type, duplicate)."""
        return self.kind in _ERROR_KINDS


# ---------------------------------------------------------------------------- structural validation


def validate_table_schema(schema: object) -> list[str]:
    """Structural problems of a Table Schema document, as readable sentences; ``[]`` when valid.

    Checks what a consumer relies on: a non-empty ``fields`` list of objects, each with a non-empty
    unique string ``name``, a known Table Schema ``type`` (absent means ``string``), a ``constraints``
    object if present (with a boolean ``required``, a non-empty ``enum`` list and a compilable
    ``pattern``), and a ``primaryKey`` that names existing fields.
    """
    if not isinstance(schema, Mapping):
        return [f"a Table Schema must be a JSON object, not {type(schema).__name__}"]
    fields = schema.get("fields")
    if fields is None:
        return ["'fields' is missing"]
    if not isinstance(fields, list):
        return [f"'fields' must be a list, not {type(fields).__name__}"]
    if not fields:
        return ["'fields' is empty: a Table Schema needs at least one field"]
    errors: list[str] = []
    seen: dict[str, int] = {}
    for i, f in enumerate(fields):
        where = f"fields[{i}]"
        if not isinstance(f, Mapping):
            errors.append(f"{where} must be an object, not {type(f).__name__}")
            continue
        name = f.get("name")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where} has no name: 'name' must be a non-empty string")
        elif name in seen:
            errors.append(f"{where}: duplicate name {name!r} (first at fields[{seen[name]}])")
        else:
            seen[name] = i
            where = f"{where} ({name!r})"
        ftype = f.get("type", "string")
        if not isinstance(ftype, str) or ftype not in TABLE_SCHEMA_TYPES:
            known = ", ".join(sorted(TABLE_SCHEMA_TYPES))
            errors.append(f"{where}: unknown type {ftype!r}; use one of {known}")
        if "format" in f and not isinstance(f["format"], str):
            errors.append(f"{where}: 'format' must be a string")
        if "constraints" in f:
            errors.extend(_constraint_errors(where, f["constraints"]))
    errors.extend(_primary_key_errors(schema.get("primaryKey"), set(seen)))
    return errors


def _constraint_errors(where: str, constraints: object) -> list[str]:
    if not isinstance(constraints, Mapping):
        return [f"{where}: 'constraints' must be an object, not {type(constraints).__name__}"]
    errors = []
    for key in ("required", "unique"):
        if key in constraints and not isinstance(constraints[key], bool):
            errors.append(f"{where}: constraints.{key} must be true or false")
    if "enum" in constraints:
        enum = constraints["enum"]
        if not isinstance(enum, list) or not enum:
            errors.append(f"{where}: constraints.enum must be a non-empty list")
    if "pattern" in constraints:
        pattern = constraints["pattern"]
        if not isinstance(pattern, str):
            errors.append(f"{where}: constraints.pattern must be a string")
        else:
            try:
                re.compile(pattern)
            except re.error as exc:
                errors.append(
                    f"{where}: constraints.pattern {pattern!r} is not a valid regular expression ({exc})")
    for key in ("minLength", "maxLength"):
        if key in constraints:
            value = constraints[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                errors.append(f"{where}: constraints.{key} must be a non-negative integer")
    return errors


def _primary_key_errors(key: object, names: set[str]) -> list[str]:
    if key is None:
        return []
    parts = [key] if isinstance(key, str) else key
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        return ["'primaryKey' must be a field name or a non-empty list of field names"]
    return [f"'primaryKey' names {p!r}, which is not a field" for p in parts if p not in names]


# ---------------------------------------------------------------------------- loading the standards


def _parse_standard(doc: object, filename: str, edition: str = DEFAULT_EDITION) -> StandardSchema:
    problems = validate_table_schema(doc)
    if not problems and isinstance(doc, Mapping):
        for key in ("title", "title_en", "source", "description"):
            if not isinstance(doc.get(key), str) or not doc[key].strip():
                problems.append(f"'{key}' must be a non-empty string")
        if not isinstance(doc.get("name"), str) or not _NAME_ID.fullmatch(doc["name"]):
            problems.append("'name' must be a lower-case ASCII identifier")
        for i, f in enumerate(doc["fields"]):
            if not isinstance(f.get("title_en"), str) or not f["title_en"].strip():
                problems.append(f"fields[{i}] ({f['name']!r}) has no title_en")
            if not isinstance(f.get("constraints", {}).get("required"), bool):
                problems.append(f"fields[{i}] ({f['name']!r}) has no constraints.required")
    if problems:
        raise ValueError(f"standard schema {filename} is malformed: " + "; ".join(problems))
    assert isinstance(doc, Mapping)
    fields = tuple(
        StandardField(
            name=f["name"], title_en=f["title_en"], type=f.get("type", "string"),
            required=f["constraints"]["required"], format=f.get("format"),
            enum=tuple(f["constraints"].get("enum", ())), pattern=f["constraints"].get("pattern"),
            description=f.get("description"))
        for f in doc["fields"])
    key = doc.get("primaryKey") or ()
    return StandardSchema(
        name=doc["name"], title=doc["title"], title_en=doc["title_en"], source=doc["source"],
        description=doc["description"], fields=fields,
        primary_key=(key,) if isinstance(key, str) else tuple(key),
        table_schema_json=json.dumps(doc, ensure_ascii=False), edition=edition)


_loaded: dict[str, StandardSchema] | None = None
_all: dict[tuple[str, str], StandardSchema] | None = None


def _load_all() -> dict[tuple[str, str], StandardSchema]:
    """Load every edition's ``*.json`` once, keyed by (edition id, Japanese title)."""
    global _all
    if _all is None:
        loaded: dict[tuple[str, str], StandardSchema] = {}
        names: set[str] = set()
        root = resources.files(__name__)
        for edition in EDITIONS:
            folder = root.joinpath(edition.folder) if edition.folder else root
            entries = sorted((e for e in folder.iterdir() if e.name.endswith(".json")), key=lambda e: e.name)
            for entry in entries:
                doc = json.loads(entry.read_text(encoding="utf-8"))
                if isinstance(doc, dict) and doc.get("edition", edition.id) != edition.id:
                    raise ValueError(f"standard schema {entry.name} says edition {doc.get('edition')!r} "
                                     f"but lies in the folder of {edition.id!r}")
                standard = _parse_standard(doc, entry.name, edition.id)
                if (edition.id, standard.title) in loaded:
                    raise ValueError(f"two standard schemas of {edition.id} are titled {standard.title!r}")
                if standard.name in names:
                    raise ValueError(f"two standard schemas are named {standard.name!r}")
                names.add(standard.name)
                loaded[(edition.id, standard.title)] = standard
        _all = loaded
    return _all


def _standards() -> dict[str, StandardSchema]:
    """The default edition's layouts, keyed by Japanese title (today's ``standard_type`` values)."""
    global _loaded
    if _loaded is None:
        _loaded = {title: s for (edition, title), s in _load_all().items() if edition == DEFAULT_EDITION}
    return _loaded


def layouts(edition: str | None = None) -> list[StandardSchema]:
    """Every shipped layout, or those of one edition (id or alias), oldest edition first."""
    wanted = None if edition is None else _edition(edition).id
    return [s for (ed, _title), s in _load_all().items() if wanted is None or ed == wanted]


def editions() -> tuple[Edition, ...]:
    """The shipped editions, oldest first."""
    return EDITIONS


def _edition(name: str) -> Edition:
    key = normalize_header(name) if isinstance(name, str) else ""
    for edition in EDITIONS:
        if key == normalize_header(edition.id) or key in (normalize_header(a) for a in edition.aliases) \
                or key == normalize_header(edition.title):
            return edition
    known = [e.id for e in EDITIONS]
    raise NotFound(f"unknown standard edition {name!r}; known editions: {', '.join(known)}",
                   message_ja=f"標準の版「{name}」はありません。使える版: {'、'.join(known)}",
                   details={"known_editions": known})


def __getattr__(name: str) -> Any:
    # STANDARD_TYPES is read from the JSON files on first use, not at import.
    if name == "STANDARD_TYPES":
        return _standards()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_standard(type_name: str, edition: str | None = None) -> StandardSchema:
    """The standard for ``type_name``: its Japanese title (``AED設置箇所一覧``) or file id (``aed``).

    Without ``edition`` a title means the default edition (the 2026 area-data model), as it always
    has; ``title@edition`` and ``edition=`` (id or alias) pick another edition's layout, and the
    file id of any edition's layout (``jichitai_public_toilets``) names it directly.
    Raises :class:`mesh.errors.NotFound` listing the known types when there is none.
    """
    if edition is None and isinstance(type_name, str) and "@" in type_name:
        type_name, edition = (part.strip() for part in type_name.split("@", 1))
    if edition is not None:
        ed = _edition(edition)
        key = normalize_header(type_name) if isinstance(type_name, str) else None
        for (ed_id, title), standard in _load_all().items():
            if ed_id == ed.id and key in (normalize_header(title), standard.name):
                return standard
        known = [s.title for s in layouts(ed.id)]
        raise NotFound(
            f"the edition {ed.id} has no layout {type_name!r}; its layouts: {', '.join(known)}",
            message_ja=f"版「{ed.id}」に「{type_name}」はありません。この版の種類: {'、'.join(known)}",
            details={"edition": ed.id, "known_types": known})
    standards = _standards()
    if type_name in standards:
        return standards[type_name]
    key = normalize_header(type_name) if isinstance(type_name, str) else None
    for standard in standards.values():
        if key in (normalize_header(standard.title), standard.name):
            return standard
    for standard in _load_all().values():
        if key == standard.name:
            return standard
    known = list(standards)
    raise NotFound(
        f"unknown standard dataset type {type_name!r}; known types: {', '.join(known)}",
        message_ja=f"標準データセットの種類「{type_name}」はありません。使える種類: {'、'.join(known)}",
        details={"known_types": known})


# ---------------------------------------------------------------------------- checking a dataset


def _compatible(expected: str, actual: str) -> bool:
    return expected == actual or (expected == "number" and actual == "integer")


def _in_order(positions: Sequence[int]) -> set[int]:
    """Indexes into ``positions`` of one longest strictly increasing run (the columns in place)."""
    tails: list[int] = []  # tails[k]: index ending the best increasing run of length k+1
    back: list[int | None] = [None] * len(positions)
    for i, p in enumerate(positions):
        lo, hi = 0, len(tails)
        while lo < hi:
            mid = (lo + hi) // 2
            if positions[tails[mid]] < p:
                lo = mid + 1
            else:
                hi = mid
        back[i] = tails[lo - 1] if lo else None
        if lo == len(tails):
            tails.append(i)
        else:
            tails[lo] = i
    keep: set[int] = set()
    node = tails[-1] if tails else None
    while node is not None:
        keep.add(node)
        node = back[node]
    return keep


def _compare(standard: StandardSchema, columns: Sequence[tuple[str, str | None]]) -> list[ColumnMismatch]:
    """Compare ``(name, type or None)`` columns in dataset order with ``standard``."""
    index = {normalize_header(f.name): i for i, f in enumerate(standard.fields)}
    total = len(standard.fields)
    title = standard.title
    out: list[ColumnMismatch] = []
    matched: dict[int, int] = {}  # standard index -> dataset position (0-based), first occurrence
    first_seen: dict[str, int] = {}
    order_columns: list[tuple[int, int]] = []  # (dataset position, standard index) in dataset order
    for pos, (name, _ftype) in enumerate(columns):
        key = normalize_header(name)
        if key in first_seen:
            out.append(ColumnMismatch(
                name, "duplicate", str(first_seen[key] + 1), str(pos + 1),
                f"column {name!r} appears twice (columns {first_seen[key] + 1} and {pos + 1})",
                f"列「{name}」が重複しています（{first_seen[key] + 1}列目と{pos + 1}列目）"))
            continue
        first_seen[key] = pos
        if key not in index:
            out.append(ColumnMismatch(
                name, "extra", None, str(pos + 1),
                f"column {name!r} (column {pos + 1}) is not in the standard {title}; "
                "added columns are allowed",
                f"列「{name}」（{pos + 1}列目）は標準「{title}」にない列です（列の追加は可能です）"))
            continue
        matched[index[key]] = pos
        order_columns.append((pos, index[key]))

    for i, f in enumerate(standard.fields):
        if i not in matched:
            if f.required:
                out.append(ColumnMismatch(
                    f.name, "missing", str(i + 1), None,
                    f"required column {f.name!r} (column {i + 1} of {total} in {title}) is missing",
                    f"必須の列「{f.name}」（「{title}」の{i + 1}列目）がありません"))
            else:
                out.append(ColumnMismatch(
                    f.name, "missing_optional", str(i + 1), None,
                    f"optional column {f.name!r} (column {i + 1} of {total} in {title}) is missing; "
                    "the standard keeps every column, even unused ones",
                    f"任意の列「{f.name}」（「{title}」の{i + 1}列目）がありません。"
                    "標準では使わない列も削除しません"))
            continue
        actual_type = columns[matched[i]][1]
        if actual_type is not None and not _compatible(f.type, actual_type):
            out.append(ColumnMismatch(
                f.name, "type", f.type, actual_type,
                f"column {f.name!r} has type {actual_type!r}; the standard {title} says {f.type!r}",
                f"列「{f.name}」の型が {actual_type} です。標準「{title}」では {f.type} です"))

    in_place = _in_order([std for _pos, std in order_columns])
    for k, (pos, std) in enumerate(order_columns):
        if k not in in_place:
            name = standard.fields[std].name
            out.append(ColumnMismatch(
                name, "order", str(std + 1), str(pos + 1),
                f"column {name!r} is column {pos + 1} here; the standard {title} puts it at column {std + 1}",
                f"列「{name}」は{pos + 1}列目にあります。標準「{title}」の順序では{std + 1}列目です"))
    return out


def check_table_schema(type_name: str, schema: Mapping[str, Any]) -> list[ColumnMismatch]:
    """Compare a dataset's Table Schema (``{"fields": [{"name", "type"}, ...]}``) with a standard.

    Reports missing columns (``missing`` when a value is required, else ``missing_optional``),
    columns not in the standard (``extra``), type mismatches (``type``; ``integer`` is accepted where
    the standard says ``number``, an absent type means ``string``), repeated columns
    (``duplicate``) and columns out of the official order (``order``, informational). Names are
    compared after :func:`normalize_header`. ``[]`` means the schema conforms exactly.

    Raises :class:`mesh.errors.NotFound` for an unknown type and
    :class:`mesh.errors.InvalidRequest` when ``schema`` has no readable field list.
    """
    standard = get_standard(type_name)
    fields = schema.get("fields") if isinstance(schema, Mapping) else None
    unreadable = not isinstance(fields, list) or not all(
        isinstance(f, Mapping) and isinstance(f.get("name"), str) for f in fields)
    if unreadable:
        problems = validate_table_schema(schema) or ["every field needs a string 'name'"]
        raise InvalidRequest(
            "cannot compare this Table Schema: " + "; ".join(problems),
            message_ja="この Table Schema は比較できません（fields が読めません）: " + "; ".join(problems),
            details={"problems": problems})
    assert isinstance(fields, list)
    columns = [(f["name"], str(f.get("type", "string"))) for f in fields]
    return _compare(standard, columns)


def check_csv_header(type_name: str, header: Sequence[str]) -> list[ColumnMismatch]:
    """Compare a CSV header row with a standard, by name only.

    Names are compared after :func:`normalize_header`, so full-width and half-width spellings of
    the same header (``ＵＲＬ``/``URL``, ``建物名等（方書）``/``建物名等(方書)``) match and a UTF-8 BOM on
    the first cell is ignored. Kinds as in :func:`check_table_schema`, without ``type``.
    """
    standard = get_standard(type_name)
    if isinstance(header, str) or not all(isinstance(h, str) for h in header):
        raise InvalidRequest("a CSV header must be a list of strings",
                             message_ja="CSV のヘッダー行は文字列のリストで渡してください")
    return _compare(standard, [(name, None) for name in header])


# ---------------------------------------------------------------------------- declaring and detecting


class StandardRef(NamedTuple):
    """A dataset's declared layout: Japanese title and edition id."""

    layout: str
    edition: str

    @property
    def label(self) -> str:
        return f"{self.layout}@{self.edition}"


def parse_standard_ref(value: object, edition: str | None = None) -> StandardRef:
    """Read a layout declaration: ``"公衆トイレ一覧"`` (default edition), ``"公衆トイレ一覧@自治体標準"``,
    or ``{"layout": "公衆トイレ一覧", "edition": "自治体標準オープンデータセット"}``.

    Edition aliases are resolved to the edition id and the layout must exist in that edition.
    Raises :class:`mesh.errors.InvalidRequest` for a malformed value, :class:`NotFound` for an
    unknown layout or edition.
    """
    if isinstance(value, Mapping):
        layout, ed = value.get("layout"), value.get("edition", edition)
        unknown = sorted(set(value) - {"layout", "edition"})
        if unknown:
            raise InvalidRequest(
                f"a standard declaration has only 'layout' and 'edition', not {', '.join(unknown)}",
                message_ja=f"標準の指定に使えるのは layout と edition だけです（{'、'.join(unknown)}）")
        if ed is not None and not isinstance(ed, str):
            raise InvalidRequest("'edition' must be a string",
                                 message_ja="edition は文字列で指定してください")
    else:
        layout, ed = value, edition
    if not isinstance(layout, str) or not layout.strip():
        raise InvalidRequest("a standard layout is named by a non-empty string",
                             message_ja="標準のレイアウトは空でない文字列で指定してください")
    standard = get_standard(layout.strip(), ed.strip() if isinstance(ed, str) else None)
    return StandardRef(standard.title, standard.edition)


class LayoutMatch(NamedTuple):
    """The layout a header most resembles: ``(layout, edition, score)``; score in 0…1."""

    layout: str
    edition: str
    score: float


_weights: dict[str, float] | None = None


def _column_weights() -> dict[str, float]:
    """Each known column's weight for detection: log(1 + layouts / layouts having it), so the common
    blocks every layout shares count for little and a layout's own columns for much."""
    global _weights
    if _weights is None:
        from math import log

        all_layouts = list(_load_all().values())
        df: dict[str, int] = {}
        for standard in all_layouts:
            for name in {normalize_header(f.name) for f in standard.fields}:
                df[name] = df.get(name, 0) + 1
        _weights = {name: log(1 + len(all_layouts) / n) for name, n in df.items()}
    return _weights


_detection: list[tuple[StandardSchema, dict[str, int], float]] | None = None


def _detection_table() -> list[tuple[StandardSchema, dict[str, int], float]]:
    """Per shipped layout, in ``_load_all`` order: its normalised column names with their first
    position, and their total weight, worked out once (a bulk import detects thousands of
    headers against every layout)."""
    global _detection
    if _detection is None:
        weights = _column_weights()
        table = []
        for standard in _load_all().values():
            names = list(dict.fromkeys(normalize_header(f.name) for f in standard.fields))
            table.append((standard, {c: i for i, c in enumerate(names)},
                          sum(weights[c] for c in names)))
        _detection = table
    return _detection


def detect_layout(header: Sequence[str], *, min_score: float = 0.6) -> LayoutMatch | None:
    """The shipped layout whose columns best match a CSV header, or ``None`` below ``min_score``.

    Names are compared after :func:`normalize_header` (BOM, width). The score is a weighted Dice
    coefficient of the two column sets, 2 × W(shared) / (W(header) + W(layout)), each column weighted
    by how rare it is among the shipped layouts (a column no layout has weighs the most), so added or
    missing columns lower it evenly and the shared common block does not decide. 1.0 is an exact
    match. A tie goes to the layout whose columns come in the header's order, then to the older
    edition (real files are more often old). Every edition is considered, so an old-layout file is
    recognised as what it is. Returns ``(layout, edition, score)`` as a :class:`LayoutMatch`.
    """
    cols = list(dict.fromkeys(normalize_header(h) for h in header if isinstance(h, str)))
    cols = [c for c in cols if c]
    if not cols:
        return None
    weights = _column_weights()
    top = max(weights.values(), default=1.0)
    header_weight = sum(weights.get(c, top) for c in cols)
    seen = set(cols)
    best: tuple[float, int, int, StandardSchema] | None = None
    for rank, (standard, position, layout_weight) in enumerate(_detection_table()):
        shared = seen.intersection(position)
        if not shared:
            continue
        score = 2 * sum(weights[c] for c in shared) / (header_weight + layout_weight)
        if best is not None and round(score, 6) < best[0]:
            continue                # the column order only breaks ties
        in_order = len(_in_order([position[c] for c in cols if c in shared]))
        key = (round(score, 6), in_order, -rank, standard)
        if best is None or key[:3] > best[:3]:
            best = key
    if best is None or best[0] < min_score:
        return None
    return LayoutMatch(best[3].title, best[3].edition, round(best[0], 4))
