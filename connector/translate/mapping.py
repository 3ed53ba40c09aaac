"""Declarative column mappings (YAML/JSON) compiled to vectorised pyarrow translations.

A mapping file lists output columns in order; each rule names one source (``from``, ``value`` or
``join``, ``pairs``) and at most one transform (``cast``, ``wareki``, ``split_name``, ``codes``, ``unit``;
``cast`` may follow ``codes``). Source values are trimmed and empty strings read as missing.
:meth:`Mapping.apply` turns one ``RecordBatch`` into another; every row that fails a rule is left
out of the output and reported as a :class:`Reject`. See docs/mappings.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from connector.translate.casts import CASTS, Converted, cast_strings, nfkc
from connector.translate.units import UNITS, conversion_factor
from connector.translate.wareki import DateError, parse_date, parse_dates
from mesh.datasets import load_document
from mesh.errors import InvalidRequest, NotFound
from mesh.standards import ColumnMismatch, StandardField, check_table_schema, get_standard, normalize_header

__all__ = ["RULE_KEYS", "Mapping", "MappingError", "Reject", "TranslateResult", "compile_mapping",
           "load_mapping"]

TOP_KEYS = ("version", "name", "description", "target_standard", "columns")
RULE_KEYS = ("to", "from", "value", "join", "pairs", "sep", "cast", "wareki", "split_name", "codes",
             "on_unknown", "unit", "round", "default", "required", "note")
SOURCES = ("from", "value", "join", "pairs")
TRANSFORMS = ("wareki", "split_name", "codes", "unit")
SPLIT_PARTS = ("family", "given")
ON_UNKNOWN = ("reject", "keep", "null")
_NAME_RE = r"^(?P<family>[^ 　]+)[ 　]+(?P<given>.+)$"

Reason = Callable[[Any], tuple[str, str]]


class MappingError(InvalidRequest):
    """A mapping file that cannot be compiled, or input that lacks a column the mapping reads."""

    code = "invalid_mapping"


@dataclass(frozen=True)
class Reject:
    """One rule failure: ``row`` is the 1-based source row number."""

    row: int
    column: str | None
    value: str | None
    reason: str
    reason_ja: str


@dataclass(frozen=True)
class TranslateResult:
    batch: pa.RecordBatch
    rejects: list[Reject]


@dataclass(frozen=True)
class _Failure:
    mask: pa.Array  # bool, true where the row failed
    column: str
    values: pa.Array
    reason: Reason


def _error(where: str, message: str, message_ja: str, **details: Any) -> MappingError:
    return MappingError(f"{where}: {message}", message_ja=f"{where}: {message_ja}", details=details)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _clean(values: pa.Array) -> pa.Array:
    """Strings, trimmed, with empty values as null."""
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    values = pc.utf8_trim_whitespace(values)
    empty = pc.equal(values, "")
    if pc.any(empty).as_py():
        values = pc.if_else(empty, pa.scalar(None, pa.string()), values)
    return values


def _json_pairs(keys: pa.Array, values: pa.Array) -> pa.Array:
    """``{"key": "value"}`` per row (``{}`` where the key is blank; a blank value is ``""``), as the
    2026 models' 画像URL（配列） is written: each image URL paired with its licence."""
    import json

    out = ["{}" if k is None else json.dumps({k: v or ""}, ensure_ascii=False)
           for k, v in zip(keys.to_pylist(), values.to_pylist(), strict=True)]
    return pa.array(out, pa.string())


@dataclass(frozen=True)
class ColumnRule:
    """One compiled output column."""

    index: int
    to: str
    kind: str  # copy | wareki | split_name | codes | unit
    source: str | None = None
    value: str | None = None
    join: tuple[str, ...] = ()
    pairs: tuple[str, str] | None = None  # (key column, value column) → one-entry JSON object
    empty: bool = False  # ``value: null``: no value (the source layout has none)
    sep: str = ""
    cast: str | None = None
    part: str = "family"
    codes: tuple[pa.Array, pa.Array, pa.Array] | None = None  # keys, NFKC keys, values
    on_unknown: str = "reject"
    factor: float = 1.0
    units: tuple[str, str] = ("", "")
    round: int | None = None
    default: pa.Scalar | None = None
    required: bool = False
    out_type: pa.DataType = field(default_factory=pa.string)
    schema_type: str = "string"

    @property
    def label(self) -> str:
        """The column named in rejects: the source column, else the output column."""
        return self.source or self.to

    def inputs(self) -> tuple[str, ...]:
        if self.pairs:
            return self.pairs
        return (self.source,) if self.source else self.join

    def _read(self, batch: pa.RecordBatch, cache: dict[str, pa.Array]) -> pa.Array:
        def column(name: str) -> pa.Array:
            if name not in cache:
                cache[name] = _clean(batch.column(name))
            return cache[name]
        if self.empty:
            return pa.nulls(batch.num_rows, pa.string())
        if self.value is not None:
            return pa.repeat(pa.scalar(self.value, pa.string()), batch.num_rows)
        if self.pairs is not None:
            return _json_pairs(column(self.pairs[0]), column(self.pairs[1]))
        if self.source is not None:
            return column(self.source)
        parts = [column(c) for c in self.join]
        all_null = reduce(pc.and_, (pc.is_null(p) for p in parts))
        if pc.any(all_null).as_py():
            # pyarrow drops rows whose inputs are all null under null_handling="skip"; give them "".
            parts[0] = pc.if_else(all_null, "", parts[0])
        return _clean(pc.binary_join_element_wise(*parts, self.sep, null_handling="skip"))

    def _transform(self, src: pa.Array, cache: dict[str, pa.Array]) -> Converted:
        if self.kind == "wareki":
            out, bad, errors = parse_dates(src)
            if not errors:
                return Converted(out)
            return Converted(out, bad, lambda v: (errors[v].message, errors[v].message_ja))
        if self.kind == "split_name":
            key = f"split_name\0{self.source or self.to}"  # 姓 and 名 rules share one regex pass
            if key not in cache:
                cache[key] = pc.extract_regex(src, _NAME_RE)
            parts = cache[key]
            part = pc.struct_field(parts, [SPLIT_PARTS.index(self.part)])
            return Converted(pc.coalesce(part, src) if self.part == "family" else part)
        if self.kind == "codes":
            return self._codes(src)
        if self.kind == "unit":
            conv = cast_strings(src, "float")
            out = pc.multiply(conv.values, self.factor)
            return Converted(out if self.round is None else pc.round(out, self.round), conv.bad, conv.reason)
        conv = cast_strings(src, self.cast or "string")
        if self.round is not None:
            return Converted(pc.round(conv.values, self.round), conv.bad, conv.reason)
        return conv

    def _codes(self, src: pa.Array) -> Converted:
        assert self.codes is not None
        keys, nfkc_keys, values = self.codes
        index = pc.index_in(src, value_set=keys)
        unknown = pc.and_(pc.is_null(index), pc.is_valid(src))
        if pc.any(unknown).as_py():
            index = pc.coalesce(index, pc.index_in(nfkc(src), value_set=nfkc_keys))
            unknown = pc.and_(pc.is_null(index), pc.is_valid(src))
        out = values.take(index)
        bad = None
        if pc.any(unknown).as_py():
            if self.on_unknown == "keep":
                out = pc.if_else(unknown, src, out)
            elif self.on_unknown == "reject":
                bad = unknown
        if self.cast:
            conv = cast_strings(out, self.cast)
            bad = conv.bad if bad is None else (bad if conv.bad is None else pc.or_(bad, conv.bad))
            return Converted(conv.values, bad, self._code_reason(keys) if bad is not None else None)
        return Converted(out, bad, self._code_reason(keys))

    def _code_reason(self, keys: pa.Array) -> Reason:
        known = [str(k) for k in keys.to_pylist()]
        shown, more = "、".join(known[:10]), (" …" if len(known) > 10 else "")
        return lambda v: (f"{v!r} is not in the code table (known codes: {', '.join(known[:10])}{more})",
                          f"「{v}」はコード表にありません（使えるコード: {shown}{more}）")

    def evaluate(self, batch: pa.RecordBatch, cache: dict[str, pa.Array]) -> tuple[pa.Array, list[_Failure]]:
        """This column's values for ``batch`` and the rows that failed."""
        src = self._read(batch, cache)
        conv = self._transform(src, cache)
        out, failures = conv.values, []
        if conv.bad is not None and conv.reason is not None:
            failures.append(_Failure(conv.bad, self.label, src, conv.reason))
        if self.default is not None:
            out = pc.if_else(pc.is_null(src), self.default, out)
        if self.required:
            missing = pc.is_null(out)
            if conv.bad is not None:
                missing = pc.and_(missing, pc.invert(conv.bad))
            if pc.any(missing).as_py():
                failures.append(_Failure(missing, self.label, src, lambda v: (
                    f"a value is required for {self.to!r} (from {self.label!r})",
                    f"「{self.to}」（元の列「{self.label}」）は必須ですが値がありません")))
        return out, failures


@dataclass(frozen=True)
class _StandardCheck:
    """Value constraints of one standard column (required, enum, pattern) applied to the output."""

    position: int
    field: StandardField
    standard: str

    def failures(self, out: pa.Array, already: pa.Array | None) -> list[_Failure]:
        f, result = self.field, []
        text = out if pa.types.is_string(out.type) else pc.cast(out, pa.string())
        masks: list[tuple[pa.Array, Reason]] = []
        if f.required:
            masks.append((pc.is_null(out), lambda v: (
                f"the standard {self.standard} requires a value for {f.name!r}",
                f"標準「{self.standard}」では「{f.name}」の値は必須です")))
        if f.enum:
            allowed = "、".join(f.enum)
            masks.append((pc.invert(pc.fill_null(pc.is_in(text, value_set=pa.array(f.enum)), True)),
                          lambda v: (f"{v!r} is not allowed in {f.name!r} by {self.standard} (use {allowed})",
                                     f"「{v}」は標準「{self.standard}」の「{f.name}」に使えません（{allowed}）")))
        if f.pattern:
            masks.append((pc.invert(pc.fill_null(pc.match_substring_regex(text, f.pattern), True)),
                          lambda v: (f"{v!r} does not match {f.name!r} of {self.standard} ({f.pattern})",
                                     f"「{v}」は標準「{self.standard}」の「{f.name}」の形式（{f.pattern}）に合いません")))
        for mask, reason in masks:
            if already is not None:
                mask = pc.and_(mask, pc.invert(already))
            if pc.any(mask).as_py():
                result.append(_Failure(mask, f.name, text, reason))
        return result


class Mapping:
    """A compiled mapping: ``apply(batch, first_row=...)`` → :class:`TranslateResult`."""

    def __init__(self, rules: Sequence[ColumnRule], *, target_standard: str | None = None,
                 name: str | None = None) -> None:
        self.rules = tuple(rules)
        self.name = name
        self.target_standard = target_standard
        self.output_schema = pa.schema([pa.field(r.to, r.out_type) for r in self.rules])
        self.standard_notes: list[ColumnMismatch] = []
        self._checks: list[_StandardCheck] = []
        if target_standard is not None:
            self._check_standard(target_standard)

    def table_schema(self) -> dict[str, Any]:
        """The output's Frictionless Table Schema (names and types)."""
        return {"fields": [{"name": r.to, "type": r.schema_type} for r in self.rules]}

    @property
    def input_columns(self) -> list[str]:
        """Source columns the mapping reads, in first-use order."""
        return list(dict.fromkeys(c for r in self.rules for c in r.inputs()))

    def _check_standard(self, standard_name: str) -> None:
        try:
            standard = get_standard(standard_name)
        except NotFound as exc:
            raise MappingError(f"target_standard: {exc.message}",
                               message_ja=f"target_standard: {exc.message_ja}", details=exc.details) from None
        mismatches = check_table_schema(standard.title, self.table_schema())
        errors = [m for m in mismatches if m.is_error]
        if errors:
            raise MappingError(
                f"the mapping's output does not conform to {standard.title}: "
                + "; ".join(m.message for m in errors),
                message_ja=f"マッピングの出力が標準「{standard.title}」に合いません: "
                + "／".join(m.message_ja for m in errors),
                details={"mismatches": [{"column": m.column, "kind": m.kind, "expected": m.expected,
                                         "actual": m.actual} for m in errors]})
        self.standard_notes = mismatches
        by_name = {normalize_header(f.name): f for f in standard.fields}
        for pos, rule in enumerate(self.rules):
            f = by_name.get(normalize_header(rule.to))
            if f is not None and (f.required or f.enum or f.pattern):
                self._checks.append(_StandardCheck(pos, f, standard.title))

    def check_input(self, columns: Iterable[str]) -> None:
        """Raise :class:`MappingError` naming every source column missing from ``columns``."""
        have = set(columns)
        missing = [(r.index, c) for r in self.rules for c in r.inputs() if c not in have]
        if missing:
            names = ", ".join(f"{c!r} (columns[{i}])" for i, c in missing)
            raise MappingError(
                f"the input has no column {names}; it has: {', '.join(sorted(have))}",
                message_ja=f"入力に列がありません: {'、'.join(c for _, c in missing)}",
                details={"missing": [c for _, c in missing], "available": sorted(have)})

    def apply(self, batch: pa.RecordBatch, *, first_row: int) -> TranslateResult:
        """Translate ``batch`` whose first row is source row ``first_row`` (1-based)."""
        self.check_input(batch.schema.names)
        cache: dict[str, pa.Array] = {}
        arrays: list[pa.Array] = []
        failures: list[_Failure] = []
        rule_bad: list[pa.Array | None] = []
        for rule in self.rules:
            out, fails = rule.evaluate(batch, cache)
            arrays.append(out)
            failures.extend(fails)
            rule_bad.append(reduce(pc.or_, (f.mask for f in fails)) if fails else None)
        for check in self._checks:
            failures.extend(check.failures(arrays[check.position], rule_bad[check.position]))
        if not failures:
            return TranslateResult(pa.RecordBatch.from_arrays(arrays, schema=self.output_schema), [])
        rejects: list[tuple[int, int, Reject]] = []
        for order, f in enumerate(failures):
            rows = pc.indices_nonzero(f.mask)
            for i, v in zip(rows.to_pylist(), f.values.take(rows).to_pylist(), strict=True):
                en, ja = f.reason(v)
                value = None if v is None else _text(v)
                rejects.append((i, order, Reject(first_row + i, f.column, value, en, ja)))
        rejects.sort(key=lambda t: (t[0], t[1]))
        keep = pc.invert(reduce(pc.or_, (f.mask for f in failures)))
        out = pa.RecordBatch.from_arrays([a.filter(keep) for a in arrays], schema=self.output_schema)
        return TranslateResult(out, [r for _, _, r in rejects])


# ---------------------------------------------------------------------------- compiling


def _yaml_hint(value: Any) -> str:
    if isinstance(value, bool):
        return ' (YAML reads NO/YES/ON/OFF as true/false: quote the column name, e.g. "NO")'
    return ""


def _one_of(where: str, key: str, value: Any, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise _error(where, f"unknown {key} {value!r}; use one of {', '.join(allowed)}",
                     f"{key} の値「{value}」は使えません。使える値: {'、'.join(allowed)}",
                     key=key, valid=list(allowed))
    return value


def _default_scalar(where: str, raw: Any, kind: str, out_cast: str) -> pa.Scalar:
    text = _text(raw)
    try:
        if kind == "wareki":
            return pa.scalar(parse_date(text), pa.date32())
    except DateError as exc:
        raise _error(where, f"default: {exc.message}", f"default: {exc.message_ja}", key="default") from None
    conv = cast_strings(pa.array([text]), out_cast)
    if conv.bad is not None and conv.reason is not None:
        en, ja = conv.reason(text)
        raise _error(where, f"default: {en}", f"default: {ja}", key="default")
    return conv.values[0]


def _compile_rule(index: int, raw: Any) -> ColumnRule:
    where = f"columns[{index}]"
    if not isinstance(raw, dict):
        raise _error(where, "each column rule must be a mapping such as {to: 名称, from: 名称}",
                     "列の定義は {to: 名称, from: 名称} のような形で書いてください", rule=index)
    for key in raw:
        if key not in RULE_KEYS:
            raise _error(where, f"unknown key {key!r}; valid keys: {', '.join(RULE_KEYS)}",
                         f"キー「{key}」は使えません。使えるキー: {'、'.join(RULE_KEYS)}",
                         rule=index, key=key, valid_keys=list(RULE_KEYS))
    to = raw.get("to")
    if not isinstance(to, str) or not to.strip():
        raise _error(where, "'to' (the output column name) must be a non-empty string",
                     "to（出力する列名）を文字列で指定してください", rule=index, key="to")
    where = f"columns[{index}] ({to})"
    sources = [k for k in SOURCES if k in raw]
    if len(sources) != 1:
        got = ", ".join(sources) or "none"
        raise _error(where, f"give exactly one of from, value, join, pairs (got {got})",
                     "from・value・join・pairs のいずれか一つを指定してください", rule=index, key="from")
    transforms = [k for k in TRANSFORMS if k in raw and raw[k] is not False]
    if len(transforms) > 1 or (transforms and transforms != ["codes"] and "cast" in raw):
        used = transforms + (["cast"] if "cast" in raw else [])
        raise _error(where, f"{' and '.join(used)} cannot be combined (only codes may take a cast)",
                     f"{'と'.join(used)} は同時に使えません（cast と組み合わせられるのは codes だけです）",
                     rule=index, key=used[-1])
    kind = transforms[0] if transforms else "copy"
    opts: dict[str, Any] = {"index": index, "to": to, "kind": kind}

    src = raw[sources[0]]
    if sources[0] == "from":
        if not isinstance(src, str) or not src:
            raise _error(where, f"'from' must be a column name, not {src!r}{_yaml_hint(src)}",
                         f"from には元の列名を書いてください{_yaml_hint(src)}", rule=index, key="from")
        opts["source"] = src
    elif sources[0] == "value":
        if isinstance(src, dict | list):
            raise _error(where, "'value' must be a string, number, boolean or null",
                         "value には文字列・数値・真偽値・null を書いてください", rule=index, key="value")
        if src is None:
            opts["empty"] = True
        else:
            opts["value"] = _text(src)
    elif sources[0] == "pairs":
        if not isinstance(src, list) or len(src) != 2 or not all(isinstance(c, str) and c for c in src):
            raise _error(where, "'pairs' is [key column, value column], e.g. [画像, 画像_ライセンス]",
                         "pairs には [キーの列, 値の列] を書いてください（例: [画像, 画像_ライセンス]）",
                         rule=index, key="pairs")
        opts["pairs"] = (src[0], src[1])
    else:
        if not isinstance(src, list) or not src or not all(isinstance(c, str) for c in src):
            flags = [c for c in src if isinstance(c, bool)] if isinstance(src, list) else []
            hint = _yaml_hint(flags[0]) if flags else ""
            raise _error(where, f"'join' must be a list of column names{hint}",
                         f"join には列名のリストを書いてください{hint}", rule=index, key="join")
        opts["join"] = tuple(src)
    if "sep" in raw:
        if "join" not in raw or not isinstance(raw["sep"], str):
            raise _error(where, "'sep' is a string and only goes with 'join'",
                         "sep は join と一緒に文字列で指定してください", rule=index, key="sep")
        opts["sep"] = raw["sep"]

    cast = "string"
    if "cast" in raw:
        cast = opts["cast"] = _one_of(where, "cast", raw["cast"], list(CASTS))
    if kind == "wareki" and raw["wareki"] is not True:
        raise _error(where, "'wareki' must be true", "wareki には true を指定してください",
                     rule=index, key="wareki")
    if kind == "wareki":
        cast = "date"
    if kind == "split_name":
        opts["part"] = _one_of(where, "split_name", raw["split_name"], SPLIT_PARTS)
    if kind == "codes":
        codes = raw["codes"]
        if not isinstance(codes, dict) or not codes or any(v is None or isinstance(v, dict | list)
                                                           for v in codes.values()):
            raise _error(where, "'codes' must map each source code to an output value",
                         "codes には元のコードと出力する値の対応を書いてください", rule=index, key="codes")
        keys = [_text(k) for k in codes]
        opts["codes"] = (pa.array(keys), nfkc(pa.array(keys)), pa.array([_text(v) for v in codes.values()]))
    if "on_unknown" in raw:
        if kind != "codes":
            raise _error(where, "'on_unknown' only goes with 'codes'", "on_unknown は codes と一緒に使います",
                         rule=index, key="on_unknown")
        opts["on_unknown"] = _one_of(where, "on_unknown", raw["on_unknown"], ON_UNKNOWN)
    if kind == "unit":
        opts.update(_compile_unit(where, index, raw["unit"]))
        cast = "float"
    if "round" in raw:
        if cast != "float" or not isinstance(raw["round"], int) or isinstance(raw["round"], bool):
            raise _error(where, "'round' (an integer number of decimals) needs cast: float or unit",
                         "round（小数点以下の桁数）は cast: float か unit と一緒に整数で指定します",
                         rule=index, key="round")
        opts["round"] = raw["round"]
    if "required" in raw:
        if not isinstance(raw["required"], bool):
            raise _error(where, "'required' must be true or false", "required は true か false です",
                         rule=index, key="required")
        opts["required"] = raw["required"]
    if raw.get("default") is not None:
        opts["default"] = _default_scalar(where, raw["default"], kind, cast)
    out_type, schema_type = CASTS[cast]
    return ColumnRule(**opts, out_type=out_type, schema_type=schema_type)


def _compile_unit(where: str, index: int, unit: Any) -> dict[str, Any]:
    if not isinstance(unit, dict) or set(unit) != {"from", "to"}:
        raise _error(where, "'unit' must be {from: <unit>, to: <unit>}",
                     "unit は {from: 単位, to: 単位} の形です", rule=index, key="unit")
    for end in ("from", "to"):
        _one_of(f"{where} unit.{end}", "unit", unit[end], list(UNITS))
    try:
        factor = conversion_factor(unit["from"], unit["to"])
    except ValueError as exc:
        raise _error(where, f"unit: {exc}", f"unit: {unit['from']} を {unit['to']} に換算できません",
                     rule=index, key="unit") from None
    return {"factor": factor, "units": (unit["from"], unit["to"])}


def compile_mapping(doc: Any) -> Mapping:
    """Compile a parsed mapping document; raise :class:`MappingError` for any problem."""
    if not isinstance(doc, dict):
        raise MappingError("a mapping file must be a mapping with 'version' and 'columns'",
                           message_ja="マッピング定義には version と columns を書いてください")
    for key in doc:
        if key not in TOP_KEYS:
            raise MappingError(f"unknown top-level key {key!r}; valid keys: {', '.join(TOP_KEYS)}",
                               message_ja=f"キー「{key}」は使えません。使えるキー: {'、'.join(TOP_KEYS)}",
                               details={"key": key, "valid_keys": list(TOP_KEYS)})
    if doc.get("version") != 1:
        raise MappingError(f"unsupported mapping version {doc.get('version')!r}; use version: 1",
                           message_ja="version は 1 を指定してください", details={"key": "version"})
    columns = doc.get("columns")
    if not isinstance(columns, list) or not columns:
        raise MappingError("'columns' must be a non-empty list of column rules",
                           message_ja="columns に列の定義を一つ以上書いてください",
                           details={"key": "columns"})
    rules = [_compile_rule(i, raw) for i, raw in enumerate(columns)]
    seen: dict[str, int] = {}
    for rule in rules:
        if rule.to in seen:
            raise _error(f"columns[{rule.index}]", f"output column {rule.to!r} is already made by "
                         f"columns[{seen[rule.to]}]", f"出力列「{rule.to}」が重複しています",
                         rule=rule.index, key="to")
        seen[rule.to] = rule.index
    standard = doc.get("target_standard")
    if standard is not None and not isinstance(standard, str):
        raise MappingError("'target_standard' must be a standard's name",
                           message_ja="target_standard は標準の名前です")
    name = doc.get("name")
    return Mapping(rules, target_standard=standard, name=name if isinstance(name, str) else None)


def load_mapping(source: str | Path | bytes | dict[str, Any], *,
                 header: Sequence[str] | None = None) -> Mapping:
    """Load and compile a mapping from a path, a built-in's name (``builtin:公衆トイレ一覧``, the
    edition told by ``header`` when needed; see :mod:`connector.translate.builtin`), YAML/JSON
    bytes or an already parsed document."""
    if isinstance(source, dict):
        return compile_mapping(source)
    label = "mapping file"
    if isinstance(source, str) and source.startswith("builtin:"):
        from connector.translate.builtin import resolve_mapping

        try:
            found = resolve_mapping(source, header)
        except NotFound as exc:
            raise MappingError(exc.message, message_ja=exc.message_ja, details=exc.details) from None
        label, source = found.label, found.data
    elif isinstance(source, str | Path):
        label = str(source)
        try:
            source = Path(source).read_bytes()
        except OSError as exc:
            raise MappingError(f"cannot read mapping file {label}: {exc.strerror}",
                               message_ja=f"マッピング定義ファイル {label} を読めません") from None
    try:
        doc = load_document(source, name=label)
    except InvalidRequest as exc:
        raise MappingError(exc.message,
                           message_ja="マッピング定義ファイルを読めません（UTF-8 の YAML/JSON、1MB まで）",
                           details={"file": label}) from None
    return compile_mapping(doc)

