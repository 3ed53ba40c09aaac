"""Test files written from each shipped layout's own definition: a conforming file and a
non-conforming one with the problems it must report. Column names come from the layout, never
from here; values are what real municipal files hold (blank enum cells, 24:00, 駐車場内, ー,
full-width digits, half-width kana, line breaks in quoted cells)."""

from __future__ import annotations

import csv
import io

from mesh.standards import StandardField, StandardSchema

PLACEHOLDER = "ー"


def good_value(f: StandardField, row: int) -> str:
    """A value that conforms to ``f``; the second row leaves every optional cell blank."""
    name = f.name
    if row == 1 and not f.required:
        return ""
    if f.enum:
        return next(v for v in f.enum if v)
    if "緯度" in name:
        return "35.6556"
    if "経度" in name:
        return "１３９．３３８９"  # full-width digits: checked as 139.3389
    if f.pattern:
        digits = int(f.pattern.removeprefix("^[0-9]{").removesuffix("}$"))  # the only form shipped
        return "１" * digits if digits == 6 else "1" * digits  # full-width digits in one of them
    if f.type in ("number", "integer"):
        return "２" if row == 0 else "3"
    if f.type == "time":
        return "24:00" if "終了" in name else "6:00"
    if f.type == "date":
        return "2024-04-01"
    if f.format == "uri":
        return "https://example.jp/a"
    if "カナ" in name:
        return "ｺｳｼｭｳﾄｲﾚ"  # half-width kana
    if name in ("設置位置", "備考"):
        return "駐車場内" if name == "設置位置" else "年末年始は\n休み"
    return "テスト値"


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def conforming_csv(layout: StandardSchema) -> str:
    """Two rows: one with every cell filled (placeholder ``ー`` in the first free-text optional
    column), one with only the required cells."""
    rows = [[good_value(f, r) for f in layout.fields] for r in range(2)]
    text = [i for i, f in enumerate(layout.fields)
            if not f.required and f.type == "string" and not f.enum and not f.pattern and not f.format]
    if text:
        rows[0][text[0]] = PLACEHOLDER
    return to_csv(layout.column_names, rows)


def broken_csv(layout: StandardSchema) -> tuple[str, set[tuple[str, str]]]:
    """One good row, then one with a bad value in each checkable column; the (column, kind) pairs
    the report must hold."""
    good = [good_value(f, 0) for f in layout.fields]
    bad = list(good)
    expected: set[tuple[str, str]] = set()
    for i, f in enumerate(layout.fields):
        if f.enum:
            bad[i], kind = "どちらでもない", "enum"
        elif "緯度" in f.name and f.type == "number":
            bad[i], kind = "135.6", "range"
        elif f.type in ("number", "integer"):
            bad[i], kind = "多数", "type"
        elif f.type in ("time", "date"):
            bad[i], kind = "25:61" if f.type == "time" else "令和6年", "type"
        elif f.pattern:
            bad[i], kind = "12-34", "pattern"
        elif f.required:
            bad[i], kind = "", "required"
        else:
            continue
        expected.add((f.name, kind))
    return to_csv(layout.column_names, [good, bad]), expected
