"""``areamesh registry participant import``: every local public body of the country as a
participant, from the list of 全国地方公共団体コード, in one transaction.

The list is a CSV with the columns code, name and, optionally, prefecture and reading (the
shipped ``mesh/municipalities.csv``: 1,962 rows, the 総務省 list; see ``mesh.places``). Not
every row is a local public body:

- the wards of the designated cities (政令市の区: 011011 札幌市中央区 under 011002 札幌市) are
  administrative districts, not bodies. Their codes, like their city's, have 100–199 in the
  3rd–5th digits; outside 東京都 a row there whose name ends in 区 is such a ward. 東京都's own
  100–199 rows, the 23 special wards (131016 千代田区 … 131237 江戸川区), ARE bodies (特別区)
  and are imported as municipalities.
- the six 北方領土 villages (016951 色丹村 … 017001 蘂取村) keep codes in the list but have no
  functioning government: they are left out, so the shipped list gives 47 prefectures and
  1,741 municipalities, 1,788 bodies.

Existing participants are never changed: a listed body already registered is ``unchanged``
when its name equals the list's and ``differing`` (reported, not overwritten) when it does not.
Every row's code is checked (length, check digit, prefecture part) before anything is written;
a bad row fails the whole import naming its line.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import AreameshError, InvalidRequest
from mesh.ids import ParticipantType, validate_local_government_code

SHIPPED_LIST = Path(__file__).resolve().parent.parent / "mesh" / "municipalities.csv"
NORTHERN_TERRITORIES = frozenset({"016951", "016969", "016977", "016985", "016993", "017001"})
TOKYO = "13"


@dataclass(frozen=True)
class Body:
    """A local public body of the list: its code (with check digit) is its participant id."""

    code: str
    name: str
    type: str            # ParticipantType.PREFECTURE or MUNICIPALITY
    reading: str | None  # katakana, when the list has it


@dataclass(frozen=True)
class BodyList:
    """The bodies of a list, and how many rows were left out as not bodies."""

    source: str
    sha256: str
    bodies: list[Body]
    wards: int             # designated cities' wards
    northern: int          # 北方領土 villages
    other_prefectures: int  # rows outside --only-prefecture


def is_designated_city_ward(code: str, name: str) -> bool:
    """A designated city's ward (政令市の区), not a body; 東京都's special wards are bodies."""
    return code[:2] != TOKYO and 100 <= int(code[2:5]) <= 199 and name.endswith("区")


def read_body_list(path: Path | None = None, only_prefecture: str | None = None) -> BodyList:
    """Read and check a list; raise ``InvalidRequest`` naming the first bad row."""
    path = path or SHIPPED_LIST
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {path}: {exc.strerror}",
                             message_ja=f"{path} を読めません: {exc.strerror}",
                             code="import_file_unreadable") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{path} is not UTF-8", message_ja=f"{path} はUTF-8ではありません",
                             code="import_file_invalid") from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or not {"code", "name"} <= set(reader.fieldnames):
        raise InvalidRequest(f"{path}: the header must have the columns code and name "
                             "(prefecture and reading optional)",
                             message_ja=f"{path}: 見出し行に code と name の列が必要です"
                                        "（prefecture, reading は任意）",
                             code="import_file_invalid")
    bodies: list[Body] = []
    seen: dict[str, int] = {}
    wards = northern = other = 0
    for line, row in enumerate(reader, start=2):
        code, name = (row.get("code") or "").strip(), (row.get("name") or "").strip()
        where, where_ja = f"{path.name} line {line} ({code or 'no code'} {name})", \
            f"{path.name} の {line} 行目（{code or 'コードなし'} {name}）"
        try:
            validate_local_government_code(code)
        except AreameshError as exc:
            raise InvalidRequest(f"{where}: {exc.message}",
                                 message_ja=f"{where_ja}: {exc.message_ja or exc.message}",
                                 code="invalid_participant_id") from None
        if not name or len(name) > 200:
            raise InvalidRequest(f"{where}: the name must be 1-200 characters",
                                 message_ja=f"{where_ja}: 名称は1〜200文字でなければなりません",
                                 code="import_file_invalid")
        if code in seen:
            raise InvalidRequest(f"{where}: code {code} is also on line {seen[code]}",
                                 message_ja=f"{where_ja}: コード {code} は {seen[code]} 行目にもあります",
                                 code="import_file_invalid")
        seen[code] = line
        if is_designated_city_ward(code, name):
            wards += 1
        elif code in NORTHERN_TERRITORIES:
            northern += 1
        elif only_prefecture and code[:2] != only_prefecture:
            other += 1
        else:
            kind = ParticipantType.PREFECTURE if code[2:5] == "000" else ParticipantType.MUNICIPALITY
            reading = (row.get("reading") or "").strip() or None
            bodies.append(Body(code, name, kind.value, reading))
    return BodyList(str(path), hashlib.sha256(raw).hexdigest(), bodies, wards, northern, other)


@dataclass
class ImportResult:
    added: list[Body] = field(default_factory=list)
    unchanged: int = 0
    differing: list[tuple[str, str, str]] = field(default_factory=list)  # code, registered, listed
    dry_run: bool = False

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "unchanged": self.unchanged,
                "differing": len(self.differing),
                "prefectures_added": sum(b.type == ParticipantType.PREFECTURE for b in self.added),
                "municipalities_added": sum(b.type == ParticipantType.MUNICIPALITY
                                            for b in self.added)}

    def to_json(self, listed: BodyList) -> dict[str, Any]:
        return {**self.counts(), "dry_run": self.dry_run, "source": listed.source,
                "sha256": listed.sha256, "bodies_in_list": len(listed.bodies),
                "skipped": {"designated_city_wards": listed.wards,
                            "northern_territories": listed.northern,
                            "other_prefectures": listed.other_prefectures},
                "differing_names": [{"id": c, "registered": r, "listed": n}
                                    for c, r, n in self.differing]}

    def summary(self) -> list[str]:
        c = self.counts()
        verb_ja, verb_en = ("追加予定", "would add") if self.dry_run else ("追加", "added")
        lines = [f"参加者の一括登録{'（試行）' if self.dry_run else ''}: {verb_ja} {c['added']}"
                 f"（都道府県 {c['prefectures_added']}・市区町村 {c['municipalities_added']}）、"
                 f"登録済みで同名 {c['unchanged']}、登録済みで名称が異なる {c['differing']}",
                 f"participant import{' (dry run)' if self.dry_run else ''}: {verb_en} "
                 f"{c['added']} ({c['prefectures_added']} prefectures, "
                 f"{c['municipalities_added']} municipalities), unchanged {c['unchanged']}, "
                 f"differing name {c['differing']}"]
        lines += [f"名称が異なります（変更していません） / name differs (kept): {code} "
                  f"registered {registered!r}, list {listed!r}"
                  for code, registered, listed in self.differing]
        return lines


async def import_bodies(db: Database, listed: BodyList, *, dry_run: bool = False) -> ImportResult:
    """Add every listed body not yet a participant (status pending), in one transaction; compare
    the names of those already registered. Idempotent: a second run adds nothing."""
    result = ImportResult(dry_run=dry_run)

    def compare(existing: dict[str, str]) -> None:
        for body in listed.bodies:
            registered = existing.get(body.code)
            if registered is None:
                result.added.append(body)
            elif registered == body.name:
                result.unchanged += 1
            else:
                result.differing.append((body.code, registered, body.name))

    if dry_run:
        compare({r["id"]: r["name"] for r in await db.fetchall("SELECT id, name FROM participants")})
        return result
    now = iso(utcnow())
    async with db.transaction() as conn:
        rows = await (await conn.execute("SELECT id, name FROM participants")).fetchall()
        compare({r[0]: r[1] for r in rows})
        await conn.executemany(
            "INSERT INTO participants(id, name, type, status, created_at, updated_at, reading) "
            "VALUES (?, ?, ?, 'pending', ?, ?, ?)",
            [(b.code, b.name, b.type, now, now, b.reading) for b in result.added])
    return result
