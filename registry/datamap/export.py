"""The data map's two tables as files: an xlsx workbook with one sheet per table, or CSV (UTF-8
with a BOM, so Excel opens Japanese text correctly), one file per table.

Header rows are exactly the guidebook's column headers (``build.SERVICE_HEADERS`` and
``build.ASSET_HEADERS``); a cell listing several entries has one per line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from registry.datamap.build import TABLES, DataMap

FORMATS = ("xlsx", "csv")
TABLE_KEYS = tuple(k for k, _ in TABLES)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_bytes(m: DataMap) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    wb = Workbook()
    wb.remove(wb.active)
    for key, title in TABLES:
        headers, rows = m.table(key)
        ws = wb.create_sheet(title)
        ws.append(list(headers))
        for row in rows:
            ws.append(row)
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = PatternFill("solid", fgColor="DDEBF7")
        wrap = Alignment(wrap_text=True, vertical="top")
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                cell.alignment = wrap
        for i, _ in enumerate(headers):
            ws.column_dimensions[chr(ord("A") + i)].width = 34
        ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def csv_bytes(m: DataMap, table: str) -> bytes:
    headers, rows = m.table(table)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8-sig")


def csv_name(out: Path, table: str) -> Path:
    """``datamap.csv`` → ``datamap-service.csv`` and ``datamap-asset.csv``."""
    return out.with_name(f"{out.stem}-{table}{out.suffix or '.csv'}")


def write(m: DataMap, fmt: str, out: Path, table: str | None = None) -> list[Path]:
    """Write the map; returns the files written. CSV: ``table`` writes that table to ``out``;
    without it, both tables to ``<stem>-service.csv`` and ``<stem>-asset.csv``."""
    if fmt == "xlsx":
        out.write_bytes(xlsx_bytes(m))
        return [out]
    if table is not None:
        out.write_bytes(csv_bytes(m, table))
        return [out]
    written = []
    for key in TABLE_KEYS:
        path = csv_name(out, key)
        path.write_bytes(csv_bytes(m, key))
        written.append(path)
    return written
