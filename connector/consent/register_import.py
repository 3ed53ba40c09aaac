"""Loading a municipality's consent register (同意台帳) from CSV: ``consent import``.

One row per consent. Columns, by their Japanese or English header (other columns are ignored
and named in the summary): 住民ID/resident (required), 提供先/participant, 利用目的/purpose,
データセットID/dataset, サービスID/service, 部品ID/component, 項目/items (column names
separated by ``;``), 有効期限/expires (a date, JST, an ISO time or a duration such as 365d).
A column the file lacks, or an empty cell, takes the command's option of the same name.

The whole file is checked before anything is recorded: every bad row is reported with its line
number, and nothing is recorded while one remains. A row repeating an earlier row's consent
(same resident, dataset, participant, service, component and purpose) is reported, not refused:
the later row is the one that holds, as two grants one after the other would.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.consent.store import ConsentGrant, check_grants
from connector.translate.csvread import detect_encoding
from mesh.errors import AreameshError, InvalidRequest

COLUMNS = {   # header (NFKC, case-folded) → field
    "住民id": "resident", "resident": "resident",
    "提供先": "participant", "participant": "participant",
    "利用目的": "purpose", "purpose": "purpose",
    "データセットid": "dataset", "dataset": "dataset",
    "サービスid": "service", "service": "service",
    "部品id": "component", "component": "component",
    "項目": "items", "items": "items",
    "有効期限": "expires", "expires": "expires",
}
ITEM_SEPARATORS = (";", "；")
MAX_REPORTED = 1000   # row problems kept for the report (all are counted)


@dataclass(frozen=True)
class RowProblem:
    line: int
    code: str
    message: str
    message_ja: str

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "code": self.code, "message": self.message,
                "message_ja": self.message_ja}


@dataclass
class Register:
    """A read register: the valid grants with their lines, and what was wrong with the rest."""

    path: Path
    encoding: str
    rows: int = 0
    grants: list[ConsentGrant] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    errors: list[RowProblem] = field(default_factory=list)
    error_count: int = 0
    repeats: list[tuple[int, int]] = field(default_factory=list)   # (line, earlier line)
    ignored_columns: list[str] = field(default_factory=list)

    def problem(self, line: int, exc: AreameshError) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(RowProblem(line, exc.code, str(exc), exc.message_ja or str(exc)))

    def drop(self, bad: set[int]) -> None:
        """Keep only the grants whose positions are not in ``bad``."""
        kept = [i for i in range(len(self.grants)) if i not in bad]
        self.grants = [self.grants[i] for i in kept]
        self.lines = [self.lines[i] for i in kept]


def _column(header: str) -> str | None:
    return COLUMNS.get(unicodedata.normalize("NFKC", header).strip().casefold())


def _items(text: str) -> tuple[str, ...] | None:
    if not text.strip():
        return None
    for sep in ITEM_SEPARATORS[1:]:
        text = text.replace(sep, ITEM_SEPARATORS[0])
    return tuple(i.strip() for i in text.split(ITEM_SEPARATORS[0]))


def read_register(path: Path, *, now: str, defaults: dict[str, str | None],
                  parse_expiry: Any, encoding: str = "auto") -> Register:
    """Read and check every row of ``path`` (on a worker thread: it is plain file work).
    ``defaults`` fills absent columns and empty cells; ``parse_expiry(text)`` turns an expiry
    cell into a time or raises ``InvalidRequest``."""
    enc = detect_encoding(path) if encoding == "auto" else encoding
    register = Register(path, enc)
    with open(path, encoding="utf-8-sig" if enc == "utf-8" else enc, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise InvalidRequest(f"{path} is empty: it needs a header row with 住民ID (resident)",
                                 message_ja=f"{path} が空です（住民ID の見出し行が必要です）",
                                 code="register_empty") from None
        fields = [_column(h) for h in header]
        register.ignored_columns = [h for h, f in zip(header, fields, strict=True) if f is None]
        if "resident" not in fields:
            raise InvalidRequest(
                f"{path} has no resident column: name one 住民ID or resident",
                message_ja=f"{path} に住民IDの列がありません（見出しを「住民ID」にしてください）",
                code="register_no_resident_column")
        for name in ("participant", "purpose"):
            if name not in fields and not defaults.get(name):
                ja = {"participant": "提供先", "purpose": "利用目的"}[name]
                raise InvalidRequest(
                    f"{path} has no {name} column: add one ({ja}) or give --{name}",
                    message_ja=f"{path} に「{ja}」の列がありません。列を加えるか --{name} を指定してください",
                    code=f"register_no_{name}")
        candidates: list[ConsentGrant] = []
        lines: list[int] = []
        for row in _rows(reader, fields, register):
            line = reader.line_num
            values = {k: (v if v else defaults.get(k) or "") for k, v in row.items()}
            try:
                expires = parse_expiry(values["expires"]) if values["expires"] else None
            except InvalidRequest as exc:
                register.problem(line, exc)
                continue
            candidates.append(ConsentGrant(
                values["resident"], values["participant"], values["purpose"],
                values["dataset"] or "*", values["service"] or None,
                values["component"] or None, _items(values["items"]), expires))
            lines.append(line)
    checked, errors = check_grants(candidates, now)
    bad = {row for row, _ in errors}
    for row, exc in errors:
        register.problem(lines[row], exc)
    good = [line for i, line in enumerate(lines) if i not in bad]
    register.grants, register.lines = checked, good
    seen: dict[tuple[str, ...], int] = {}
    for g, line in zip(checked, good, strict=True):
        key = g.key()
        if key in seen:
            register.repeats.append((line, seen[key]))
        seen[key] = line
    return register


def _rows(reader: Any, fields: list[str | None], register: Register
          ) -> Iterator[dict[str, str]]:
    width = len(fields)
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue                     # blank lines, as spreadsheets leave them
        register.rows += 1
        if len(cells) != width:
            register.problem(reader.line_num, InvalidRequest(
                f"{len(cells)} cells where the header has {width}",
                message_ja=f"列の数が見出し（{width}列）と違います（{len(cells)}列）",
                code="register_row_width"))
            continue
        row = dict.fromkeys(COLUMNS.values(), "")
        for name, cell in zip(fields, cells, strict=True):
            if name is not None:
                row[name] = cell.strip()
        yield row


def expiry_parser(parse: Any) -> Any:
    """``parse`` (the CLI's ``--expires`` reader) with row-level wording, each text read once."""

    seen: dict[str, datetime | None] = {}   # one expiry per text: "365d" is the same for all

    def parse_cell(text: str) -> datetime | None:
        if text in seen:
            return seen[text]
        try:
            seen[text] = parse(text)
            return seen[text]
        except InvalidRequest:
            raise InvalidRequest(
                f"expiry {text!r}: give a date (2027-03-31, JST), an ISO time or a duration (365d)",
                message_ja=f"有効期限 {text!r} は日付（2027-03-31）、日時、期間（365d）で指定してください",
                code="invalid_expiry") from None

    return parse_cell
