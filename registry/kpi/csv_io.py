"""KPI files: outcome values read from CSV, outputs and outcomes written to CSV.

**Import** (``areamesh registry kpi import``, the console's upload form): a CSV file in UTF-8
(with or without a BOM) or Shift_JIS (CP932, as Excel saves it in Japan), its first line the
header ``indicator,period,value`` — or in Japanese ``指標ID,期間,値`` — in that order; a further
column is refused. One line per indicator and month: ``tourist_visits,2026-04,12500``. Values
may carry thousands separators and full-width digits. Rows are numbered as a spreadsheet shows
them: the header is row 1. If any row is bad — an indicator that is not defined, a month that
is not ``YYYY-MM``, a value that is not a number, the same indicator and month twice, a wrong
number of columns — nothing is stored and every bad row is named with its number and reason
(``InvalidRequest`` code ``kpi_import_rejected``, ``details.rows``). Blank lines are skipped.

**Export** (``areamesh registry kpi export``, the console's download, UTF-8 with a BOM so Excel
opens it as UTF-8): one row per indicator, one column per month (``EXPORT_COLUMNS`` then the
months). ``section`` is ``output`` or ``outcome``; ``measure`` says what a monthly figure is:
``stock`` (as of the month's end, JST), ``flow`` (during the month) or ``entered`` (the outcome
value the operator entered for that month; empty when none was).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from mesh.errors import InvalidRequest
from registry.kpi.outcomes import OutcomeIndicator, ValueRow, check_month, parse_value

HEADERS = (("indicator", "period", "value"), ("指標ID", "期間", "値"))
MAX_ROWS = 10_000
EXPORT_COLUMNS = ("section", "indicator", "name_ja", "name_en", "unit", "measure", "direction",
                  "target", "target_date")


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else Shift_JIS (CP932); else a clear refusal."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932")
    except UnicodeDecodeError:
        raise InvalidRequest("the file is neither UTF-8 nor Shift_JIS text",
                             message_ja="ファイルが UTF-8 でも Shift_JIS でもありません",
                             code="kpi_import_encoding") from None


def _reason(row: int, en: str, ja: str) -> dict[str, Any]:
    return {"row": row, "reason": en, "reason_ja": ja}


def parse_values(data: bytes, known: set[str]) -> list[ValueRow]:
    """Every row of the file, or ``InvalidRequest`` naming each bad row (nothing half-read)."""
    lines = list(csv.reader(io.StringIO(decode(data), newline="")))
    wanted = {tuple(c.lower() for c in h) for h in HEADERS}
    if not lines or tuple(c.strip().lower() for c in lines[0]) not in wanted:
        got = ",".join(lines[0]) if lines else ""
        raise InvalidRequest(
            f"the first line must be the header 'indicator,period,value' (or '指標ID,期間,値'), "
            f"not {got!r}", message_ja="1行目は見出し行 indicator,period,value（または 指標ID,期間,値）"
                                       "にしてください", code="kpi_import_header")
    rows: list[ValueRow] = []
    bad: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for number, cells in enumerate(lines[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != 3:
            bad.append(_reason(number, f"{len(cells)} columns, expected 3",
                               f"列の数が {len(cells)} です（3列にしてください）"))
            continue
        indicator, period, value = (c.strip() for c in cells)
        problems: list[tuple[str, str]] = []
        if indicator not in known:
            problems.append((f"indicator {indicator!r} is not defined",
                             f"指標 {indicator!r} は定義されていません"))
        try:
            period = check_month(period)
        except InvalidRequest:
            problems.append((f"period {period!r} is not YYYY-MM",
                             f"期間 {period!r} は YYYY-MM ではありません"))
        try:
            number_value = parse_value(value)
        except InvalidRequest:
            problems.append((f"value {value!r} is not a number",
                             f"値 {value!r} は数値ではありません"))
        if not problems and (indicator, period) in seen:
            problems.append((f"{indicator} {period} is also in row {seen[(indicator, period)]}",
                             f"{indicator} {period} は {seen[(indicator, period)]} 行目にもあります"))
        if problems:
            bad.append(_reason(number, "; ".join(p[0] for p in problems),
                               "、".join(p[1] for p in problems)))
            continue
        seen[(indicator, period)] = number
        rows.append(ValueRow(indicator, period, number_value))
        if len(rows) > MAX_ROWS:
            raise InvalidRequest(f"at most {MAX_ROWS:,} rows per file",
                                 message_ja=f"1ファイル {MAX_ROWS:,} 行までです",
                                 code="kpi_import_too_large")
    if bad:
        listed = "; ".join(f"row {b['row']}: {b['reason']}" for b in bad[:20])
        listed_ja = "、".join(f"{b['row']}行目: {b['reason_ja']}" for b in bad[:20])
        more = f" (and {len(bad) - 20} more)" if len(bad) > 20 else ""
        raise InvalidRequest(
            f"{len(bad)} bad row(s), nothing was imported: {listed}{more}",
            message_ja=f"{len(bad)} 行に誤りがあるため、何も取り込んでいません。{listed_ja}",
            code="kpi_import_rejected", details={"rows": bad})
    if not rows:
        raise InvalidRequest("the file has a header but no values",
                             message_ja="見出し行のほかに値の行がありません",
                             code="kpi_import_empty")
    return rows


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def export_rows(outputs: dict[str, Any], outcomes: Iterable[OutcomeIndicator]) -> list[list[str]]:
    """The export as rows (header first); ``outputs`` is ``OutputIndicators.compute(...)``."""
    months = outputs["months"]
    rows = [[*EXPORT_COLUMNS, *months]]
    for s in outputs["outputs"]:
        rows.append(["output", s["key"], s["name_ja"], s["name_en"], s["unit"], s["measure"],
                     "", "", "", *(_number(v) for v in s["values"])])
    for o in outcomes:
        rows.append(["outcome", o.id, o.name_ja, o.name_en, o.unit, "entered",
                     o.direction, _number(o.target), o.target_date,
                     *(_number(o.values.get(m)) for m in months)])
    return rows


def export_csv(outputs: dict[str, Any], outcomes: Iterable[OutcomeIndicator]) -> bytes:
    """UTF-8 with a BOM, CRLF line ends (what Excel expects)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(export_rows(outputs, outcomes))
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")
