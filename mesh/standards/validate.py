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

The file is read in batches by ``pyarrow.csv.open_csv`` (every column as text), and each group of
rows is checked on a worker thread while the next is read. Checks are vectorised with
``pyarrow.compute``, on a batch's distinct values where a column repeats itself; there is no Python
loop per cell. The :class:`Report` groups problems by column and kind with a count and the first
three examples in file order, rendered in Japanese and English without any Python repr.
"""

from __future__ import annotations

import codecs
import csv
import io
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
#: Bytes per block read and parsed (small blocks parse faster: they stay in the CPU cache).
BLOCK_SIZE = 1 << 20
#: Rows checked together: enough that the per-call cost of pyarrow.compute vanishes.
GROUP_ROWS = 1 << 17

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


@dataclass
class _Source:
    """An open CSV file: its header, a streaming reader of string batches, the record numbers of
    rows of the wrong length (filled in while reading) and the encoding."""

    header: list[str]
    reader: Any
    bad_rows: list[int]
    encoding: str


def _open(path: Path, encoding: str | None) -> _Source:
    """Open ``path`` for reading in batches of strings (every column as text, blank as ``""``)."""
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
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, encoding=arrow_enc,
                                       block_size=BLOCK_SIZE),
        parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))
    return _Source(header, reader, bad, enc)


def _batches(source: _Source):
    """The reader's batches, then nothing (also for a file with a header and no rows)."""
    while True:
        try:
            yield source.reader.read_next_batch()
        except StopIteration:
            return


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


class _ColumnCheck:
    """The checks of one column, run batch after batch; counts and first examples add up in row order.

    Every check is a function of the cell alone: the cell's value is its NFKC form, trimmed (only
    trimmed in a column that is merely required). So the checks run on the distinct values of a
    batch and are mapped back to the rows (real columns repeat a few values: counts, 有/無, times,
    codes), or on the cells themselves once a column turns out to hold mostly distinct values.
    Number and integer columns first accept plain ASCII digit strings, which pass whatever
    normalisation does, and check only the remaining cells.
    """

    def __init__(self, f: StandardField, index: int, placeholders: list[str]) -> None:
        import pyarrow as pa

        self.field, self.index = f, index
        key = normalize_header(f.name)
        self.axis = "lat" if key in _LAT_NAMES or f.title_en.lower() in _LAT_NAMES else \
            "lon" if key in _LON_NAMES or f.title_en.lower() in _LON_NAMES else None
        self.placeholders = pa.array(placeholders, pa.string()) if placeholders else None
        # Plain ASCII, or a column only checked for blanks, needs no normalisation beyond trimming.
        self.typed = bool(f.type in _TYPE_PATTERNS or f.format == "uri" or f.enum or f.pattern
                          or self.axis or placeholders)
        self.checks: list[tuple[str, str, str]] = []  # kind, detail_ja, detail_en
        if f.type in _TYPE_PATTERNS:
            self.checks.append(("type", *_TYPE_WORDS[f.type]))
        if f.format == "uri":
            self.checks.append(("uri", "", ""))
        self.allowed = sorted({_nfkc(v) for v in f.enum if _nfkc(v)}) if f.enum else []
        if f.enum:
            self.checks.append(("enum", "、".join(self.allowed), ", ".join(self.allowed)))
        if f.pattern:
            self.checks.append(("pattern", f.pattern, f.pattern))
        self.ranged = bool(self.axis and f.type in ("number", "integer"))
        if self.ranged:
            lo, hi = JAPAN_BOUNDS[self.axis]
            self.checks.append(("range", f"{'緯度' if self.axis == 'lat' else '経度'} {lo}〜{hi}",
                                f"{'latitude' if self.axis == 'lat' else 'longitude'} {lo} to {hi}"))
        # An ASCII digit string is its own NFKC form, untrimmed, a number and an integer; it is
        # accepted at once unless it could be a placeholder or must lie within Japan.
        self.digits_pass = (f.type in ("number", "integer") and not (f.format == "uri" or f.enum
                            or f.pattern or self.ranged)
                            and not any(p.isascii() and p.isdigit() for p in placeholders))
        self.distinct = True  # check distinct values; off once a batch is mostly distinct values
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[tuple[int, str]]] = {}

    @property
    def needed(self) -> bool:
        """False for free text where a blank is allowed: nothing to check."""
        return bool(self.field.required or self.checks)

    def _failures(self, raw) -> dict[str, Any]:
        """kind -> boolean mask over ``raw`` of the cells failing that check (the original rules)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        f = self.field
        ascii_only = not self.typed or pc.all(pc.string_is_ascii(raw)).as_py() is not False
        value = raw if ascii_only else pc.utf8_normalize(raw, "NFKC")
        value = pc.utf8_trim_whitespace(value)
        blank = pc.equal(value, "")
        if self.placeholders is not None:
            blank = pc.or_(blank, pc.is_in(value, value_set=self.placeholders))
        filled = pc.invert(blank)
        out: dict[str, Any] = {}
        if f.required:
            out["required"] = blank
        is_number = None  # the number pattern's matches, when the type check has them
        for kind, _ja, _en in self.checks:
            if kind == "type":
                ok = pc.match_substring_regex(value, _TYPE_PATTERNS[f.type])
                is_number = ok if f.type == "number" else None
            elif kind == "uri":
                ok = pc.match_substring_regex(value, _URI)
            elif kind == "enum":
                ok = pc.is_in(value, value_set=pa.array(self.allowed, pa.string()))
            elif kind == "pattern":
                ok = pc.match_substring_regex(value, f"(?:{f.pattern})")
            else:  # range
                if is_number is None:
                    is_number = pc.match_substring_regex(value, _NUMBER)
                numeric = pc.and_(filled, is_number)
                as_num = pc.cast(pc.if_else(numeric, value, "0"), pa.float64())
                lo, hi = JAPAN_BOUNDS[self.axis]
                out[kind] = pc.and_(numeric, pc.or_(pc.less(as_num, lo), pc.greater(as_num, hi)))
                continue
            out[kind] = pc.and_(filled, pc.invert(ok))
        return out

    def run(self, raw, first_row: int) -> None:
        """Check the cells ``raw`` (an array of strings) whose first is data row ``first_row`` (0-based)."""
        import pyarrow.compute as pc

        where = None  # positions in raw of the cells checked, when not all of them
        if self.digits_pass:
            rest = pc.invert(pc.ascii_is_decimal(raw))
            n = pc.sum(rest).as_py() or 0
            if n == 0:
                return
            if n < len(raw):
                where = pc.indices_nonzero(rest)
                raw = pc.take(raw, where)
        if self.distinct:
            encoded = pc.dictionary_encode(raw)
            uniques, codes = encoded.dictionary, encoded.indices
            self.distinct = len(uniques) * 4 <= len(raw)
            masks = {k: m for k, m in self._failures(uniques).items() if pc.any(m).as_py()}
            masks = {k: pc.take(m, codes) for k, m in masks.items()}
        else:
            masks = self._failures(raw)
        for kind, mask in masks.items():
            count = pc.sum(mask).as_py() or 0
            if not count:
                continue
            self.counts[kind] = self.counts.get(kind, 0) + count
            shown = self.examples.setdefault(kind, [])
            if len(shown) < EXAMPLES:
                idx = pc.indices_nonzero(mask).slice(0, EXAMPLES - len(shown))
                values = pc.take(raw, idx).to_pylist()
                rows = (pc.take(where, idx) if where is not None else idx).to_pylist()
                shown += [(first_row + int(r) + 2, v) for r, v in zip(rows, values, strict=True)]

    def problems(self) -> list[Problem]:
        kinds = ["required"] * bool(self.field.required) + [k for k, _ja, _en in self.checks]
        details = {k: (ja, en) for k, ja, en in self.checks}
        return [Problem(self.field.name, k, self.counts[k], tuple(self.examples[k]),
                        *details.get(k, ("", ""))) for k in kinds if self.counts.get(k)]


def _check_all(columns: list[_ColumnCheck], batches: list[Any], first_row: int) -> None:
    import pyarrow as pa

    for check in columns:
        raw = pa.concat_arrays([b.column(check.index) for b in batches])
        check.run(raw, first_row)


def validate_csv(path: str | Path, standard: StandardSchema, *,
                 missing_values: Sequence[str] | Mapping[str, Sequence[str]] = (),
                 encoding: str | None = None) -> Report:
    """Validate the CSV file at ``path`` against ``standard`` (see the module docstring).

    ``missing_values`` are placeholders read as blank: a list for every column, or a mapping from
    column name (or ``"*"``) to a list. ``encoding`` defaults to detection (UTF-8 with or without
    BOM, UTF-16 with BOM, else CP932).
    """
    from concurrent.futures import ThreadPoolExecutor

    extra: dict[str, list[str]] = {}
    if isinstance(missing_values, Mapping):
        for k, v in missing_values.items():
            extra[k if k == "*" else normalize_header(k)] = [v] if isinstance(v, str) else list(v)
    else:
        extra["*"] = list(missing_values)
    source = _open(Path(path), encoding)
    header = source.header
    first: dict[str, int] = {}
    for i, name in enumerate(header):
        first.setdefault(normalize_header(name), i)
    columns = [_ColumnCheck(f, first[normalize_header(f.name)], _missing_values(standard, f, extra))
               for f in standard.fields if normalize_header(f.name) in first]
    columns = [c for c in columns if c.needed]
    # Rows are checked a group of batches at a time on a worker thread while the next group is
    # read (pyarrow releases the GIL in both); one group waits at most, so memory stays bounded.
    rows = 0
    pending = None
    group: list[Any] = []
    group_rows = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        for batch in _batches(source):
            group.append(batch)
            group_rows += batch.num_rows
            if group_rows >= GROUP_ROWS:
                if pending is not None:
                    pending.result()
                pending = pool.submit(_check_all, columns, group, rows)
                rows += group_rows
                group, group_rows = [], 0
        if pending is not None:
            pending.result()
        if group_rows:
            _check_all(columns, group, rows)
            rows += group_rows
    report = Report(standard.title, standard.edition, rows, source.encoding)
    for m in check_csv_header(standard.label, header):
        kind = {"missing": "missing_column", "duplicate": "duplicate_column",
                "missing_optional": "missing_optional_column", "extra": "extra_column"}.get(m.kind)
        if kind:
            report.problems.append(Problem(m.column, kind, 0))
    bad_rows = source.bad_rows
    if bad_rows:
        report.problems.append(Problem("（行）/ (rows)", "row_length", len(bad_rows),
                                       tuple((n, "") for n in bad_rows[:EXAMPLES])))
    for check in columns:
        report.problems.extend(check.problems())
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
