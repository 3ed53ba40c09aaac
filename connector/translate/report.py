"""Reject reports for people: a text table and a CSV, reasons in Japanese and English."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import Counter
from collections.abc import Sequence

from connector.translate.mapping import Reject

__all__ = ["CSV_HEADER", "rejects_csv", "rejects_table", "summary"]

CSV_HEADER = ("行 row", "列 column", "値 value", "理由 reason_ja", "reason")
_TABLE_HEADER = ("行 row", "列 column", "値 value", "理由 / reason")


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _cut(text: str, limit: int) -> str:
    if _width(text) <= limit:
        return text
    out, used = [], 0
    for c in text:
        w = _width(c)
        if used + w > limit - 1:
            break
        out.append(c)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def rejects_table(rejects: Sequence[Reject], *, limit: int | None = 50, value_width: int = 24) -> str:
    """A plain-text table (CJK-width aware): one reject per line, Japanese reason then English."""
    shown = rejects if limit is None else rejects[:limit]
    rows = [(str(r.row), r.column or "", _cut("" if r.value is None else r.value, value_width),
             f"{r.reason_ja} / {r.reason}") for r in shown]
    widths = [max(_width(row[i]) for row in [_TABLE_HEADER, *rows]) for i in range(3)]
    def line(cells: Sequence[str]) -> str:
        return "  ".join(_pad(c, w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3]

    lines = [line(_TABLE_HEADER), line(["-" * w for w in widths] + ["-" * 12])]
    lines += [line(row) for row in rows]
    if len(shown) < len(rejects):
        lines.append(f"… 他 {len(rejects) - len(shown)} 件 / {len(rejects) - len(shown)} more")
    return "\n".join(lines) + "\n"


def rejects_csv(rejects: Sequence[Reject]) -> str:
    """CSV text (header + one line per reject); write it with ``utf-8-sig`` for Excel."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    writer.writerows((r.row, r.column or "", "" if r.value is None else r.value, r.reason_ja, r.reason)
                     for r in rejects)
    return buf.getvalue()


def summary(rejects: Sequence[Reject], *, total_rows: int) -> str:
    """One paragraph: how many rows were rejected, and counts per column."""
    rows = len({r.row for r in rejects})
    if not rejects:
        return (f"全 {total_rows} 行を変換しました（除外なし） / "
                f"all {total_rows} rows translated, none rejected\n")
    per_column = Counter(r.column or "" for r in rejects)
    detail = "、".join(f"{c}: {n}" for c, n in per_column.most_common())
    return (f"{total_rows} 行中 {rows} 行を除外しました（{len(rejects)} 件のエラー: {detail}） / "
            f"{rows} of {total_rows} rows rejected ({len(rejects)} problems)\n")
