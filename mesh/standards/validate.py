"""Validating a CSV file's values against a standard layout, the way real municipal files are written.

What passes, because real files are like that (see docs/standards.md):

* a blank cell in an optional column, also where the column has a fixed vocabulary (enum);
* a cell holding one of the column's declared placeholders (``ー``, ``-``, ``不明`` …): Frictionless
  ``missingValues`` on the layout or on one field, or given by the dataset/caller, is blank;
* times ``h:mm``/``hh:mm``/``hh:mm:ss`` up to ``24:00`` (a closing time);
* full-width digits and letters and half-width kana: values are checked in their NFKC form
  (``１２`` is 12, ``ｶﾅ`` is カナ) but never rewritten;
* line breaks inside quoted cells.

What fails: a blank required cell, a value that is not of the column's type, not in its vocabulary
or not matching its pattern, a latitude/longitude outside Japan, a missing required column, a
repeated column, a row with the wrong number of cells.

Checks are vectorised with ``pyarrow.compute`` over whole columns read by ``pyarrow.csv``; there is
no Python loop per cell. The :class:`Report` groups problems by column and kind with a count and
the first three examples, rendered in Japanese and English without any Python repr.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.standards import StandardField, StandardSchema, check_csv_header, normalize_header

__all__ = ["JAPAN_BOUNDS", "Problem", "Report", "detect_encoding", "validate_csv"]

#: Latitude and longitude bounds of Japan
#: (沖ノ鳥島 20.4°N … 択捉島 45.6°N, 与那国島 122.9°E … 南鳥島 154.0°E).
JAPAN_BOUNDS = {"lat": (20, 46), "lon": (122, 154)}
_LAT_NAMES = {"緯度", "latitude", "lat"}
_LON_NAMES = {"経度", "longitude", "lon", "lng"}
EXAMPLES = 3

_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_INTEGER = r"^[+-]?[0-9]+$"
_TIME = r"^(([01]?[0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?|24:00(:00)?)$"
_DATE = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
_DATETIME = (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
             r"(Z|[+-][0-9]{2}:?[0-9]{2})?$")
_YEAR = r"^[0-9]{4}$"
_BOOLEAN = r"^(true|false|True|False|TRUE|FALSE|1|0)$"
_URI = r"^[A-Za-z][A-Za-z0-9+.-]*://[^\s]+$"
_TYPE_PATTERNS = {"number": _NUMBER, "integer": _INTEGER, "time": _TIME, "date": _DATE,
                  "datetime": _DATETIME, "year": _YEAR, "boolean": _BOOLEAN}
_TYPE_WORDS = {"number": ("数値", "a number"), "integer": ("整数", "an integer"),
               "time": ("時刻（hh:mm、24:00 まで）", "a time (hh:mm, up to 24:00)"),
               "date": ("日付（YYYY-MM-DD）", "a date (YYYY-MM-DD)"),
               "datetime": ("日時（ISO 8601）", "a date-time (ISO 8601)"),
               "year": ("西暦年（4桁）", "a year (4 digits)"), "boolean": ("真偽値", "a boolean")}

# kind -> (Japanese, English) sentence about the column; the values follow.
_KINDS = {
    "required": ("必須の値が空欄です", "a required value is blank"),
    "type": ("{ja}ではない値があります", "values are not {en}"),
    "enum": ("決められた値（{ja}）以外の値があります", "values are not one of {en}"),
    "pattern": ("形式（{ja}）に合わない値があります", "values do not match the pattern {en}"),
    "uri": ("URL ではない値があります", "values are not URLs"),
    "range": ("日本の範囲（{ja}）の外の値があります", "values lie outside Japan ({en})"),
    "missing_column": ("必須の列がありません", "a required column is missing"),
    "duplicate_column": ("列名が重複しています", "the column appears more than once"),
    "row_length": ("列の数がヘッダーと違う行があります",
                   "rows have a different number of cells than the header"),
    # notes, not failures
    "missing_optional_column": ("任意の列がありません（標準では使わない列も残します）",
                                "an optional column is missing (the standard keeps unused columns)"),
    "extra_column": ("標準にない列です（追加は可能です）",
                     "the column is not in the standard (added columns are allowed)"),
}
_NOTES = frozenset({"missing_optional_column", "extra_column"})


@dataclass(frozen=True)
class Problem:
    """One kind of problem in one column: how many cells, and the first few (row number, value)."""

    column: str
    kind: str
    count: int
    examples: tuple[tuple[int, str], ...] = ()
    detail_ja: str = ""
    detail_en: str = ""

    @property
    def is_error(self) -> bool:
        return self.kind not in _NOTES

    @property
    def message_ja(self) -> str:
        return _KINDS[self.kind][0].format(ja=self.detail_ja, en=self.detail_en)

    @property
    def message(self) -> str:
        return _KINDS[self.kind][1].format(ja=self.detail_ja, en=self.detail_en)

    def to_json(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "count": self.count, "error": self.is_error,
                "message": self.message, "message_ja": self.message_ja,
                "examples": [{"row": r, "value": v} for r, v in self.examples]}


@dataclass
class Report:
    """What validating one file found; ``conforms`` when no problem is an error."""

    layout: str
    edition: str
    rows: int
    encoding: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def conforms(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    def to_json(self) -> dict[str, Any]:
        return {"layout": self.layout, "edition": self.edition, "rows": self.rows,
                "encoding": self.encoding, "conforms": self.conforms,
                "problems": [p.to_json() for p in self.problems]}

    def render(self) -> str:
        """The report as text: a summary line, then per column each problem in Japanese and English
        with its count and up to three examples (row numbers count CSV records, the header is 1)."""
        head_ja = "適合しています" if self.conforms else f"適合していません（問題 {len(self.errors)} 件）"
        head_en = "conforms" if self.conforms else f"does not conform ({len(self.errors)} problems)"
        lines = [f"{self.layout}（{self.edition}）: {self.rows} 行 / rows, {self.encoding}",
                 f"{head_ja} / {head_en}"]
        by_column: dict[str, list[Problem]] = {}
        for p in self.problems:
            by_column.setdefault(p.column, []).append(p)
        for column, problems in by_column.items():
            lines.append(f"列 / column「{column}」")
            for p in problems:
                mark = "✗" if p.is_error else "・"
                cells = "cell" if p.count == 1 else "cells"
                count = f"{p.count} 件 / {p.count} {cells}" if p.examples else ""
                lines.append(f"  {mark} {p.message_ja}{'：' + count if count else ''}")
                lines.append(f"    {p.message}")
                for row, value in p.examples:
                    shown_ja = f"「{value}」" if value != "" else "（空欄）"
                    shown_en = f"“{value}”" if value != "" else "(blank)"
                    lines.append(f"    行 {row}: {shown_ja} / row {row}: {shown_en}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- reading


def detect_encoding(sample: bytes, *, complete: bool = True) -> str:
    """``utf-8-sig``, ``utf-16`` (BOM), ``utf-8`` when the sample decodes, else ``cp932``.
    ``complete=False`` when the sample is the start of a longer file (a character may be cut)."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(sample) - 4:  # not merely a character cut at the end
            return "cp932"
    return "utf-8"


def _read(path: Path, encoding: str | None) -> tuple[list[str], Any, int, list[int], str]:
    """Header, pyarrow table of strings, rows read, record numbers of rows of the wrong length, encoding."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    with path.open("rb") as fh:
        sample = fh.read(1 << 16)
    enc = encoding or detect_encoding(sample, complete=len(sample) < 1 << 16)
    text = sample.decode(enc, errors="replace")
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0] if "\n" in text else text)), [])
    header = [h.lstrip("\ufeff") for h in header]
    names = [f"c{i}" for i in range(len(header))]
    bad: list[int] = []

    def on_invalid(row) -> str:
        bad.append(row.number if row.number is not None else -1)
        return "skip"

    arrow_enc = "utf8" if enc in ("utf-8", "utf-8-sig") else enc
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, encoding=arrow_enc,
                                       block_size=1 << 22),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))
    return header, table, table.num_rows, bad, enc


# ---------------------------------------------------------------------------- checking


def _nfkc(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip()


def _missing_values(standard: StandardSchema, f: StandardField,
                    extra: Mapping[str, Sequence[str]]) -> list[str]:
    """The placeholders of one column: the layout's ``missingValues`` (schema, then field level),
    then the caller's for every column (``"*"``) and for this column, NFKC-normalised, blank dropped."""
    doc = standard.table_schema()
    values: list[str] = list(doc.get("missingValues", []))
    for fd in doc["fields"]:
        if fd["name"] == f.name:
            values += list(fd.get("missingValues", []))
    values += list(extra.get("*", ())) + list(extra.get(normalize_header(f.name), ()))
    return sorted({_nfkc(v) for v in values if isinstance(v, str) and _nfkc(v)})


def _examples(mask, raw, row_offset: int = 2) -> tuple[int, tuple[tuple[int, str], ...]]:
    import pyarrow.compute as pc

    count = pc.sum(mask).as_py() or 0
    if not count:
        return 0, ()
    idx = pc.indices_nonzero(mask).slice(0, EXAMPLES)
    values = pc.take(raw, idx).to_pylist()
    return count, tuple((int(i) + row_offset, v) for i, v in zip(idx.to_pylist(), values, strict=True))


def _check_column(f: StandardField, raw, placeholders: list[str]) -> list[Problem]:
    import pyarrow as pa
    import pyarrow.compute as pc

    key = normalize_header(f.name)
    axis = "lat" if key in _LAT_NAMES or f.title_en.lower() in _LAT_NAMES else \
        "lon" if key in _LON_NAMES or f.title_en.lower() in _LON_NAMES else None
    if not (f.required or f.type in _TYPE_PATTERNS or f.format == "uri" or f.enum or f.pattern or axis):
        return []  # free text, blank allowed: nothing to check
    # Plain ASCII, or a column only checked for blanks, needs no normalisation beyond trimming.
    typed = f.type in _TYPE_PATTERNS or f.format == "uri" or f.enum or f.pattern or axis or placeholders
    ascii_only = not typed or pc.all(pc.string_is_ascii(raw)).as_py() is not False
    value = raw if ascii_only else pc.utf8_normalize(raw, "NFKC")
    value = pc.utf8_trim_whitespace(value)
    blank = pc.equal(value, "")
    if placeholders:
        blank = pc.or_(blank, pc.is_in(value, value_set=pa.array(placeholders)))
    filled = pc.invert(blank)
    out: list[Problem] = []
    if f.required:
        n, ex = _examples(blank, raw)
        if n:
            out.append(Problem(f.name, "required", n, ex))
    checks: list[tuple[str, Any, str, str]] = []
    if f.type in _TYPE_PATTERNS:
        ja, en = _TYPE_WORDS[f.type]
        checks.append(("type", pc.match_substring_regex(value, _TYPE_PATTERNS[f.type]), ja, en))
    if f.format == "uri":
        checks.append(("uri", pc.match_substring_regex(value, _URI), "", ""))
    if f.enum:
        allowed = sorted({_nfkc(v) for v in f.enum if _nfkc(v)})
        checks.append(("enum", pc.is_in(value, value_set=pa.array(allowed)),
                       "、".join(allowed), ", ".join(allowed)))
    if f.pattern:
        checks.append(("pattern", pc.match_substring_regex(value, f"(?:{f.pattern})"), f.pattern, f.pattern))
    for kind, ok, ja, en in checks:
        n, ex = _examples(pc.and_(filled, pc.invert(ok)), raw)
        if n:
            out.append(Problem(f.name, kind, n, ex, ja, en))
    if axis and f.type in ("number", "integer"):
        numeric = pc.and_(filled, pc.match_substring_regex(value, _NUMBER))
        as_num = pc.cast(pc.if_else(numeric, value, "0"), pa.float64())
        lo, hi = JAPAN_BOUNDS[axis]
        outside = pc.and_(numeric, pc.or_(pc.less(as_num, lo), pc.greater(as_num, hi)))
        n, ex = _examples(outside, raw)
        if n:
            out.append(Problem(f.name, "range", n, ex, f"{'緯度' if axis == 'lat' else '経度'} {lo}〜{hi}",
                               f"{'latitude' if axis == 'lat' else 'longitude'} {lo} to {hi}"))
    return out


def validate_csv(path: str | Path, standard: StandardSchema, *,
                 missing_values: Sequence[str] | Mapping[str, Sequence[str]] = (),
                 encoding: str | None = None) -> Report:
    """Validate the CSV file at ``path`` against ``standard`` (see the module docstring).

    ``missing_values`` are placeholders read as blank: a list for every column, or a mapping from
    column name (or ``"*"``) to a list. ``encoding`` defaults to detection (UTF-8 with or without
    BOM, UTF-16 with BOM, else CP932).
    """
    extra: dict[str, list[str]] = {}
    if isinstance(missing_values, Mapping):
        for k, v in missing_values.items():
            extra[k if k == "*" else normalize_header(k)] = [v] if isinstance(v, str) else list(v)
    else:
        extra["*"] = list(missing_values)
    header, table, rows, bad_rows, enc = _read(Path(path), encoding)
    report = Report(standard.title, standard.edition, rows, enc)
    for m in check_csv_header(standard.label, header):
        kind = {"missing": "missing_column", "duplicate": "duplicate_column",
                "missing_optional": "missing_optional_column", "extra": "extra_column"}.get(m.kind)
        if kind:
            report.problems.append(Problem(m.column, kind, 0))
    if bad_rows:
        report.problems.append(Problem("（行）/ (rows)", "row_length", len(bad_rows),
                                       tuple((n, "") for n in bad_rows[:EXAMPLES])))
    first: dict[str, int] = {}
    for i, name in enumerate(header):
        first.setdefault(normalize_header(name), i)
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(f, first[normalize_header(f.name)]) for f in standard.fields
            if normalize_header(f.name) in first]
    # pyarrow.compute releases the GIL: columns are checked side by side.
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = pool.map(lambda job: _check_column(job[0], table.column(job[1]).combine_chunks(),
                                                     _missing_values(standard, job[0], extra)), jobs)
        for problems in results:
            report.problems.extend(problems)
    return report



def read_header(path: str | Path, encoding: str | None = None) -> list[str]:
    """The first row of a CSV file (BOM dropped), in its detected encoding."""
    with Path(path).open("rb") as fh:
        sample = fh.read(1 << 16)
    text = sample.decode(encoding or detect_encoding(sample, complete=len(sample) < 1 << 16),
                         errors="replace")
    row = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    return [h.lstrip("\ufeff") for h in row]


def choose_layout(name: str | None, header: Sequence[str], edition: str | None = None) -> StandardSchema:
    """The layout to validate a file with: ``name`` (``公衆トイレ一覧``, ``公衆トイレ一覧@2019``, a file
    id) in ``edition``; a bare name without edition takes the edition whose columns fit ``header``
    best; no name at all means :func:`~mesh.standards.detect_layout`.

    Raises :class:`mesh.errors.NotFound` when nothing fits.
    """
    from mesh import standards
    from mesh.errors import NotFound

    if name is None:
        match = standards.detect_layout(header)
        if match is None:
            raise NotFound("the header matches no shipped standard layout; name one with --standard",
                           message_ja="ヘッダーがどの標準レイアウトにも当てはまりません。"
                                      "--standard で指定してください")
        return standards.get_standard(match.layout, match.edition)
    if edition is not None or "@" in name:
        return standards.get_standard(name, edition)
    named = standards.get_standard(name)
    candidates = [s for s in standards.layouts() if s.title == named.title] or [named]
    if len(candidates) == 1:
        return candidates[0]
    cols = {normalize_header(h) for h in header}
    return max(candidates, key=lambda s: (len(cols & {normalize_header(c) for c in s.column_names}),
                                          s.edition == standards.DEFAULT_EDITION))
