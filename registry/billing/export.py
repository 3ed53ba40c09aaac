"""Statements and the summary of a billing run as CSV (UTF-8 with BOM, CRLF: Excel opens it
with the Japanese intact) and as one xlsx workbook (sheet 集計 then one sheet per participant).

Files written to the output directory, for period P:
- ``billing-P-summary.csv``: one row per participant and a total row (SUMMARY_HEADER);
- ``billing-P-statement-<participant id>.csv``: one row per cost item and a total row
  (STATEMENT_HEADER), then the rounding rule and the rule file's digest;
- ``billing-P.xlsx``: the same tables.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

SUMMARY_HEADER = ["参加者ID", "参加者名", "固定費・共用費（円）", "変動費（円）", "按分額（軽減前・円）",
                  "データ提供軽減（円）", "軽減の再配分（円）", "請求額（円）"]
STATEMENT_HEADER = ["費目ID", "費目名", "区分", "按分方法", "按分基準", "基準値", "按分比率",
                    "按分額（軽減前・円）", "軽減の基準値", "データ提供軽減（円）", "軽減の再配分（円）",
                    "請求額（円）"]
KIND_JA = {"fixed": "固定費・共用費", "variable": "変動費"}
METHOD_JA = {"equal": "等分負担", "population": "人口比按分", "usage": "従量課金（利用量に応じた按分）"}
BASIS_JA = {"participants": "参加団体数", "population": "人口", "records_provided": "提供レコード数",
            "records_received": "受領レコード数", "transfers_provided": "提供転送数",
            "transfers_received": "受領転送数", "bytes_provided": "提供バイト数",
            "bytes_received": "受領バイト数", "api_calls": "API呼び出し数",
            "consented_records": "同意取得済みレコード数"}
TOTAL = "合計"


def _basis(item: dict[str, Any]) -> str:
    key = {"equal": "participants", "population": "population"}.get(item["method"], item["basis"])
    return BASIS_JA.get(key, key or "")


def summary_rows(run: dict[str, Any]) -> list[list[Any]]:
    rows: list[list[Any]] = [[s["participant"], s["name"], s["fixed"], s["variable"], s["base"],
                              -s["credit"], s["redistributed"], s["total"]]
                             for s in run["statements"]]
    st = run["statements"]
    rows.append([TOTAL, "", sum(s["fixed"] for s in st), sum(s["variable"] for s in st),
                 sum(s["base"] for s in st), -sum(s["credit"] for s in st),
                 sum(s["redistributed"] for s in st), sum(s["total"] for s in st)])
    return rows


def statement_rows(run: dict[str, Any], statement: dict[str, Any]) -> list[list[Any]]:
    items = {i["id"]: i for i in run["items"]}
    rows: list[list[Any]] = []
    for ln in statement["lines"]:
        item = items[ln["item"]]
        rows.append([item["id"], item["name"], KIND_JA[item["kind"]], METHOD_JA[item["method"]],
                     _basis(item), ln["basis_value"], round(ln["share"], 6), ln["base"],
                     ln["discount_figure"] if item.get("discount") else "", -ln["credit"],
                     ln["redistributed"], ln["amount"]])
    rows.append([TOTAL, "", "", "", "", "", "", statement["base"], "", -statement["credit"],
                 statement["redistributed"], statement["total"]])
    return rows


def statement_notes(run: dict[str, Any], statement: dict[str, Any]) -> list[list[str]]:
    notes = [["対象期間", run["period"]], ["参加者", f"{statement['participant']} {statement['name']}"],
             ["端数処理", run["rounding_rule"]["ja"]], ["ルールファイル", run["rules_digest"]]]
    if run.get("population_source"):
        notes.append(["人口の出典", run["population_source"]])
    return notes


def _csv(header: list[str], rows: list[list[Any]], notes: list[list[str]] = ()) -> bytes:  # type: ignore[assignment]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    if notes:
        w.writerow([])
        w.writerows(notes)
    return buf.getvalue().encode("utf-8-sig")


def write_outputs(run: dict[str, Any], out: Path) -> list[Path]:
    """Write the CSV files and the workbook; return their paths (summary first)."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"billing-{run['period']}"
    paths = [out / f"{stem}-summary.csv"]
    paths[0].write_bytes(_csv(SUMMARY_HEADER, summary_rows(run),
                              [["端数処理", run["rounding_rule"]["ja"]],
                               ["ルールファイル", run["rules_digest"]]]))
    for s in run["statements"]:
        path = out / f"{stem}-statement-{s['participant']}.csv"
        path.write_bytes(_csv(STATEMENT_HEADER, statement_rows(run, s), statement_notes(run, s)))
        paths.append(path)
    book = out / f"{stem}.xlsx"
    book.write_bytes(workbook(run))
    paths.append(book)
    return paths


def workbook(run: dict[str, Any]) -> bytes:
    """The run as an xlsx workbook: 集計 (the summary), then one sheet per participant."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = "集計"
    _sheet(ws, SUMMARY_HEADER, summary_rows(run), [["端数処理", run["rounding_rule"]["ja"]],
                                                    ["ルールファイル", run["rules_digest"]]], Font)
    for s in run["statements"]:
        _sheet(wb.create_sheet(s["participant"]), STATEMENT_HEADER, statement_rows(run, s),
               statement_notes(run, s), Font)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _sheet(ws, header: list[str], rows: list[list[Any]], notes: list[list[str]], font) -> None:
    ws.append(header)
    for cell in ws[1]:
        cell.font = font(bold=True)
    for row in rows:
        ws.append(row)
    for cell in ws[ws.max_row]:
        cell.font = font(bold=True)
    ws.append([])
    for note in notes:
        ws.append(note)
    for i, _ in enumerate(header, start=1):
        ws.column_dimensions[ws.cell(1, i).column_letter].width = 18
    for row in ws.iter_rows(min_row=2, max_row=len(rows) + 1):
        for cell in row:
            if isinstance(cell.value, int):
                cell.number_format = "#,##0"
    ws.freeze_panes = "A2"
