"""Resident tables for bulk linkage: CSV reading, header aliases and per-cell normalisation.

A table is read whole (UTF-8, UTF-8 with BOM, or Shift_JIS/cp932 as municipal systems often
export), its header resolved through English or Japanese aliases (氏名, フリガナ, 生年月日, 性別,
住所 …), and every cell normalised with :mod:`registry.identity.normalise` (repeated values once).
Bad input raises ``InvalidRequest`` whose message names the file, the line and the column. An id
on more than one row is not an error: registers export an id's history (an old and a new address)
or the same row twice, so every row is kept and the repeats are listed in ``ResidentTable.repeats``
for the operator; the matcher treats the rows of one id as versions of one record.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mesh.errors import InvalidRequest
from registry.identity.normalise import (
    InvalidBasic4,
    normalise_address,
    normalise_birth_date,
    normalise_kana,
    normalise_name,
    normalise_sex,
)

__all__ = ["COLUMN_ALIASES", "FIELDS", "REQUIRED_COLUMNS", "RepeatedId", "ResidentTable", "input_error",
           "read_residents", "table_from_rows"]

FIELDS = ("name", "name_kana", "birth_date", "sex", "address")
COLUMN_ALIASES = {
    "id": ("id", "ID", "住民ID", "個人ID", "宛名番号", "番号"),
    "name": ("name", "氏名", "名前", "漢字氏名"),
    "name_kana": ("name_kana", "kana", "フリガナ", "ふりがな", "カナ氏名", "氏名カナ", "氏名フリガナ",
                  "ヨミ"),
    "birth_date": ("birth_date", "birthdate", "dob", "生年月日"),
    "sex": ("sex", "gender", "性別"),
    "address": ("address", "住所"),
}
REQUIRED_COLUMNS = ("id", "name", "birth_date", "address")
_NORMALISERS: dict[str, Callable[[str], str]] = {
    "name": normalise_name, "name_kana": normalise_kana, "birth_date": normalise_birth_date,
    "sex": normalise_sex, "address": normalise_address}


@dataclass(frozen=True)
class RepeatedId:
    """A row whose id an earlier row already has; ``same`` when its normalised cells are that
    row's too (an exact copy), else the two rows differ (history, or two people on one id)."""

    id: str
    line: int
    first_line: int
    same: bool


@dataclass
class ResidentTable:
    """One platform's residents, normalised, as parallel lists indexed by row (an id may be on
    more than one row; ``repeats`` lists every row after an id's first)."""

    source: str
    ids: list[str]
    name: list[str]
    kana: list[str]
    birth: list[str]
    sex: list[str]
    address: list[str]
    repeats: list[RepeatedId] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


def input_error(source: str, line: int | None, column: str | None, message: str, message_ja: str,
                 ) -> InvalidRequest:
    where = source + (f":{line}" if line else "") + (f": column {column}" if column else "")
    where_ja = source + (f" {line}行目" if line else "") + (f" 列 {column}" if column else "")
    return InvalidRequest(f"{where}: {message}", message_ja=f"{where_ja}: {message_ja}",
                          details={"file": source, "line": line, "column": column})


def _resolve_columns(header: Sequence[str], source: str) -> dict[str, int]:
    positions = {h.strip(): i for i, h in enumerate(header)}
    found: dict[str, int] = {}
    for column, aliases in COLUMN_ALIASES.items():
        for alias in aliases:
            if alias in positions:
                found[column] = positions[alias]
                break
    missing = [c for c in REQUIRED_COLUMNS if c not in found]
    if missing:
        raise input_error(source, 1, ", ".join(missing),
                          f"missing column(s) {missing}; header is {list(header)}",
                          f"必須の列がありません（{'、'.join(missing)}）")
    return found


def table_from_rows(rows: Iterable[Sequence[str]], header: Sequence[str], source: str = "<rows>",
                    lines: Sequence[int] | None = None) -> ResidentTable:
    """Normalise rows (lists of cells under ``header``; blank rows skipped). Errors name the
    source, the line (``lines[i]`` for row i, else the row's position after a header line) and
    the column."""
    columns = _resolve_columns(header, source)
    memo: dict[str, dict[str, str]] = {f: {} for f in FIELDS}
    out: dict[str, list[str]] = {f: [] for f in FIELDS}
    ids: list[str] = []
    seen: dict[str, tuple[int, int]] = {}  # id → (first line, its row index)
    repeats: list[tuple[str, int, int, int, int]] = []  # id, line, first line, first row, row
    for n, row in enumerate(rows):
        if not any(cell.strip() for cell in row):
            continue
        line = lines[n] if lines is not None else n + 2
        rid = row[columns["id"]].strip() if columns["id"] < len(row) else ""
        if not rid:
            raise input_error(source, line, "id", "empty id", "ID が空です")
        first = seen.setdefault(rid, (line, len(ids)))
        if first[1] != len(ids):
            repeats.append((rid, line, first[0], first[1], len(ids)))
        ids.append(rid)
        for f in FIELDS:
            pos = columns.get(f)
            raw = row[pos] if pos is not None and pos < len(row) else ""
            cache = memo[f]
            value = cache.get(raw)
            if value is None:
                try:
                    value = cache[raw] = _NORMALISERS[f](raw)
                except InvalidBasic4 as exc:
                    raise input_error(source, line, f, exc.message.split(": ", 1)[-1],
                                      (exc.message_ja or "").split(": ", 1)[-1]) from None
            out[f].append(value)
    return ResidentTable(source, ids, out["name"], out["name_kana"], out["birth_date"], out["sex"],
                         out["address"],
                         [RepeatedId(rid, line, first_line, all(out[f][row] == out[f][first] for f in FIELDS))
                          for rid, line, first_line, first, row in repeats])


def read_residents(path: str | Path) -> ResidentTable:
    """Read and normalise a resident CSV (UTF-8, UTF-8-BOM, or Shift_JIS as a fallback)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise input_error(source, None, None, f"cannot read file: {exc.strerror or exc}",
                          f"ファイルを読めません（{exc.strerror or exc}）") from None
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise input_error(source, None, None, "not UTF-8 or Shift_JIS text",
                          "UTF-8 でも Shift_JIS でもありません")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        for row in reader:
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise input_error(source, reader.line_num, None, f"not CSV: {exc}",
                          f"CSV として読めません（{exc}）") from None
    if not rows:
        raise input_error(source, 1, None, "empty file (no header)",
                          "空のファイルです（見出し行がありません）")
    return table_from_rows(rows[1:], rows[0], source, lines[1:])
