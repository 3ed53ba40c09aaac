"""Outcome indicators (アウトカム指標) the operating organisation defines, and their values.

The guidebook's logic tree (v3 §8.3) sets the *outcome* KPIs first — the expected effects and
changes of the vision (期待・効果・変化) — and derives the *output* KPIs from the measures taken
(registry/kpi/outputs.py computes those). Outcomes cannot be computed from the registry's
stores: the operator defines each one (id, name in Japanese and English, unit, a target value
and the date it is due, whether higher or lower is better) and enters a value per month, in the
console or from a CSV file (registry/kpi/csv_io.py).

Periods are months, ``YYYY-MM`` (a yearly figure, such as one per fiscal year, goes in the
year's last month, e.g. ``2027-03``). One value per indicator and month: entering it again
replaces it. Every change goes through ``KpiService`` and lands in the admin audit log
(registry/operators/audit_log.py) with the old and new value.

Progress toward the target compares the latest value with the first one entered (the
baseline): ``(latest - baseline) / (target - baseline)``, held to 0–100 %. A target already
met counts as 100 %. With a single value the baseline is that value, so progress is 0 % unless
the target is met.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from mesh.clock import iso, utcnow
from mesh.db import Database
from mesh.errors import InvalidRequest, NotFound
from registry.kpi.schema import KPI_MIGRATION
from registry.operators.admin import AdminService
from registry.operators.audit_log import Actor

__all__ = ["KPI_MIGRATION", "Definition", "KpiService", "OutcomeIndicator", "OutcomeStore", "ValueRow"]


DIRECTIONS = ("higher", "lower")
ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MONTH_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MAX_NAME = 200
MAX_UNIT = 40
MAX_VALUE = 1e15


@dataclass(frozen=True)
class OutcomeIndicator:
    id: str
    name_ja: str
    name_en: str
    unit: str
    target: float
    target_date: str           # YYYY-MM-DD
    direction: str             # higher | lower
    values: dict[str, float]   # period (YYYY-MM) → value, in period order

    @property
    def baseline(self) -> tuple[str, float] | None:
        return next(iter(self.values.items()), None)

    @property
    def latest(self) -> tuple[str, float] | None:
        return next(reversed(self.values.items()), None)

    @property
    def met(self) -> bool:
        if self.latest is None:
            return False
        value = self.latest[1]
        return value >= self.target if self.direction == "higher" else value <= self.target

    @property
    def progress(self) -> float | None:
        """0.0–1.0 toward the target (see the module's docstring); None without values."""
        if self.latest is None or self.baseline is None:
            return None
        if self.met:
            return 1.0
        base, latest = self.baseline[1], self.latest[1]
        if self.target == base:
            return 0.0
        return min(1.0, max(0.0, (latest - base) / (self.target - base)))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name_ja": self.name_ja, "name_en": self.name_en,
                "unit": self.unit, "target": self.target, "target_date": self.target_date,
                "direction": self.direction,
                "values": [{"period": p, "value": v} for p, v in self.values.items()],
                "baseline": self.baseline and {"period": self.baseline[0],
                                               "value": self.baseline[1]},
                "latest": self.latest and {"period": self.latest[0], "value": self.latest[1]},
                "met": self.met, "progress": self.progress}


def check_month(text: str, *, what: str = "period") -> str:
    text = text.strip()
    if not MONTH_PATTERN.match(text):
        raise InvalidRequest(f"{what} {text!r}: use YYYY-MM, e.g. 2026-04",
                             message_ja=f"期間 {text!r} は YYYY-MM（例: 2026-04）で指定してください",
                             code="invalid_period", details={"field": what})
    return text


def parse_value(text: str, *, what: str = "value") -> float:
    """A number as people write it: full-width digits, thousands separators and a trailing %
    (the unit says what it is a percentage of) are accepted; NaN and infinities are not."""
    import unicodedata

    cleaned = unicodedata.normalize("NFKC", text).strip().replace(",", "").rstrip("%").strip()
    try:
        value = float(cleaned)
    except ValueError:
        value = math.nan
    if not cleaned or not math.isfinite(value) or abs(value) > MAX_VALUE:
        raise InvalidRequest(f"{what} {text!r} is not a number",
                             message_ja=f"値 {text!r} は数値ではありません",
                             code="invalid_value", details={"field": what})
    return value


def _plain(value: float) -> float:
    """A whole number as an int (12500, not 12500.0), so pages and files show it plainly."""
    return int(value) if float(value).is_integer() else value


def _text(value: str, what: str, limit: int, *, required: bool = True) -> str:
    value = value.strip()
    if (required and not value) or len(value) > limit:
        raise InvalidRequest(f"{what} must be 1-{limit} characters",
                             message_ja=f"{what} は1〜{limit}文字で指定してください",
                             code="invalid_indicator", details={"field": what})
    return value


@dataclass(frozen=True)
class Definition:
    """What the operator enters to define (or redefine) an outcome indicator, checked."""

    id: str
    name_ja: str
    name_en: str
    unit: str
    target: float
    target_date: str
    direction: str

    @classmethod
    def parse(cls, fields: dict[str, str]) -> Definition:
        ident = fields.get("id", "").strip()
        if not ID_PATTERN.match(ident):
            raise InvalidRequest(
                f"indicator id {ident!r}: 1-40 characters, lower-case letters, digits, '_', "
                "'-' or '.', starting with a letter or digit",
                message_ja="指標IDは半角英小文字・数字・_ - . の1〜40文字で指定してください",
                code="invalid_indicator", details={"field": "id"})
        target_date = fields.get("target_date", "").strip()
        try:
            date.fromisoformat(target_date)
        except ValueError:
            raise InvalidRequest(f"target date {target_date!r}: use YYYY-MM-DD",
                                 message_ja="目標期日は YYYY-MM-DD で指定してください",
                                 code="invalid_indicator", details={"field": "target_date"}
                                 ) from None
        direction = fields.get("direction", "").strip()
        if direction not in DIRECTIONS:
            raise InvalidRequest("direction must be 'higher' or 'lower'",
                                 message_ja="方向は「高いほど良い」か「低いほど良い」を選んでください",
                                 code="invalid_indicator", details={"field": "direction"})
        return cls(ident, _text(fields.get("name_ja", ""), "name_ja", MAX_NAME),
                   _text(fields.get("name_en", ""), "name_en", MAX_NAME),
                   _text(fields.get("unit", ""), "unit", MAX_UNIT),
                   parse_value(fields.get("target", ""), what="target"), target_date, direction)

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class ValueRow:
    indicator: str
    period: str
    value: float


class OutcomeStore:
    """The two tables; no checks of who acts (that is ``KpiService``)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def indicators(self) -> list[OutcomeIndicator]:
        rows = await self.db.fetchall("SELECT * FROM kpi_outcomes ORDER BY id")
        values: dict[str, dict[str, float]] = {r["id"]: {} for r in rows}
        for v in await self.db.fetchall("SELECT indicator_id, period, value FROM "
                                        "kpi_outcome_values ORDER BY indicator_id, period"):
            values.setdefault(v["indicator_id"], {})[v["period"]] = _plain(v["value"])
        return [OutcomeIndicator(r["id"], r["name_ja"], r["name_en"], r["unit"], _plain(r["target"]),
                                 r["target_date"], r["direction"], values[r["id"]]) for r in rows]

    async def indicator(self, ident: str) -> OutcomeIndicator:
        for indicator in await self.indicators():
            if indicator.id == ident:
                return indicator
        raise NotFound(f"no outcome indicator {ident!r}",
                       message_ja=f"アウトカム指標 {ident} は定義されていません",
                       code="unknown_indicator")

    async def define(self, d: Definition) -> bool:
        """Insert or update; True when it is new."""
        now = iso(utcnow())
        async with self.db.transaction() as conn:
            held = await (await conn.execute("SELECT 1 FROM kpi_outcomes WHERE id = ?",
                                             (d.id,))).fetchone()
            await conn.execute(
                "INSERT INTO kpi_outcomes(id, name_ja, name_en, unit, target, target_date, "
                "direction, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name_ja = excluded.name_ja, "
                "name_en = excluded.name_en, unit = excluded.unit, target = excluded.target, "
                "target_date = excluded.target_date, direction = excluded.direction, "
                "updated_at = excluded.updated_at",
                (d.id, d.name_ja, d.name_en, d.unit, d.target, d.target_date, d.direction,
                 now, now))
        return held is None

    async def set_values(self, rows: list[ValueRow], *, source: str, by: str
                         ) -> dict[tuple[str, str], float | None]:
        """Store every row in one transaction; the values they replaced (None: none held)."""
        now = iso(utcnow())
        old: dict[tuple[str, str], float | None] = {}
        async with self.db.transaction() as conn:
            known = {r[0] for r in await (await conn.execute(
                "SELECT id FROM kpi_outcomes")).fetchall()}
            for row in rows:
                if row.indicator not in known:
                    raise NotFound(f"no outcome indicator {row.indicator!r}",
                                   message_ja=f"アウトカム指標 {row.indicator} は定義されていません",
                                   code="unknown_indicator")
                held = await (await conn.execute(
                    "SELECT value FROM kpi_outcome_values WHERE indicator_id = ? AND period = ?",
                    (row.indicator, row.period))).fetchone()
                old[(row.indicator, row.period)] = held[0] if held else None
                await conn.execute(
                    "INSERT INTO kpi_outcome_values(indicator_id, period, value, source, "
                    "entered_by, entered_at) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(indicator_id, period) DO UPDATE SET value = excluded.value, "
                    "source = excluded.source, entered_by = excluded.entered_by, "
                    "entered_at = excluded.entered_at",
                    (row.indicator, row.period, row.value, source, by, now))
        return old


class KpiService:
    """Outcome changes as the console, the CLI and the JSON API make them: each is checked
    (``actor.may_change``) and written to the audit log with its outcome, refusals included."""

    def __init__(self, admin: AdminService) -> None:
        self.admin = admin
        self.outcomes = OutcomeStore(admin.store.db)

    async def define(self, actor: Actor, fields: dict[str, str]) -> Definition:
        async def act() -> Definition:
            d = Definition.parse(fields)
            await self.outcomes.define(d)
            return d

        shown = {k: fields.get(k, "") for k in ("name_ja", "name_en", "unit", "target",
                                                "target_date", "direction")}
        return await self.admin.run(actor, "kpi.define", fields.get("id", "").strip(), shown, act)

    async def set_value(self, actor: Actor, indicator: str, period: str, value: str) -> float:
        async def act() -> float:
            row = ValueRow(indicator, check_month(period), parse_value(value))
            old = await self.outcomes.set_values([row], source="console", by=actor.name)
            details["old"] = old[(row.indicator, row.period)]
            return row.value

        details: dict[str, Any] = {"period": period.strip(), "value": value.strip()}
        return await self.admin.run(actor, "kpi.value", indicator, details, act)

    async def import_csv(self, actor: Actor, data: bytes, filename: str) -> int:
        """All rows or none (registry/kpi/csv_io.py says how a file is read); the row count."""
        from registry.kpi.csv_io import parse_values

        async def act() -> int:
            known = {i.id for i in await self.outcomes.indicators()}
            rows = parse_values(data, known)
            details["rows"] = len(rows)
            old = await self.outcomes.set_values(rows, source="csv", by=actor.name)
            details["replaced"] = sum(1 for v in old.values() if v is not None)
            return len(rows)

        details: dict[str, Any] = {"file": filename, "bytes": len(data)}
        return await self.admin.run(actor, "kpi.import", filename or "(upload)", details, act)
