"""Output indicators (アウトプット指標), computed from the registry's own stores, per month (JST).

The guidebook (v3 §8.3) calls outputs the simple results of the measures taken (単純結果となる
指標); here they are what the platform itself records. Each series has one figure per month
and a ``measure``:

- ``stock``: the number as of the end of the month (JST), e.g. participants registered by then;
- ``flow``: what happened during the month, e.g. transfers that ended in it.

Series (key — measure — source and rule):

- ``participants.total``, ``participants.<type>`` — stock — ``participants`` registered before
  the month's end, any status.
- ``participants.certified`` — stock — certified (``certified_at``) before the end and not
  suspended by then (a suspension's time is the row's ``updated_at``).
- ``services.certified`` — stock — the ``services`` table (service registration, issue 14
  part 3) when this registry has it: rows certified (``certified_at``) before the end, else
  registered (``created_at`` / ``registered_at``) before it. Without the table the series is
  marked unavailable and its values are 0.
- ``datasets.total``, ``datasets.theme.<分野>``, ``datasets.standard_type.<型>`` — stock —
  ``datasets`` published before the end and not withdrawn by then (a withdrawal's time is
  ``modified_at``); themes and standard type as the dataset's current description says.
- ``agreements.notarised`` — flow — ``notarisations``: agreements first notarised in the month.
- ``transfers``, ``records`` — flow — ``usage_records``: transfers that ended in the month and
  their records, as ``/api/v1/usage`` counts them.
- ``api_calls`` — flow — ``api_call_counts`` (API-call metering, issue 14 part 1) when present:
  calls on the month's JST days, anonymous ones included; else unavailable.
- ``consents.residents`` — stock — ``consent_counts`` (consent metering) when present: per
  connector and dataset, the latest count reported on or before the month's last day, summed
  over datasets (a resident who consented for two datasets counts twice); else unavailable.
- ``identity.linked_residents`` — stock — ``identity/identity.db``: residents with the IDs of
  two or more platforms linked, from the second link's time (links undone since are not
  counted).

What the stores do not keep is not reconstructed: a participant suspended and reinstated
counts from its latest certification; a dataset withdrawn and published again counts from its
first publication and as published throughout. Months are ``YYYY-MM``; at most
``MAX_MONTHS`` per request.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from mesh.clock import from_iso, iso, utcnow
from mesh.db import Database
from mesh.errors import InvalidRequest
from mesh.ids import ParticipantType
from registry.metering.usage import JST, Period, parse_period

log = logging.getLogger("areamesh.registry.kpi")
MAX_MONTHS = 60

TYPE_NAMES = {"prefecture": ("都道府県", "prefectures"), "municipality": ("市区町村", "municipalities"),
              "private": ("民間事業者", "private companies"),
              "operator": ("運営組織", "operating organisations")}

# group → (name ja, name en): one chart per group on the console page
GROUPS = {
    "participants": ("参加者数", "Participants"),
    "services": ("認定サービス数", "Certified services"),
    "datasets": ("公開データセット数", "Published datasets"),
    "datasets_theme": ("分野別データセット数", "Datasets by theme"),
    "datasets_standard": ("標準データセット型別のデータセット数", "Datasets by standard type"),
    "agreements": ("公証された利用契約数（月間）", "Agreements notarised (per month)"),
    "transfers": ("データ転送回数（月間）", "Transfers (per month)"),
    "records": ("提供レコード数（月間）", "Records provided (per month)"),
    "api_calls": ("API呼び出し数（月間）", "API calls (per month)"),
    "consents": ("同意を得た住民数", "Residents with consent"),
    "identity": ("ID連携した住民数", "Residents with linked IDs"),
}


@dataclass
class Series:
    key: str
    group: str
    name_ja: str
    name_en: str
    unit: str                  # 件 | 団体 | 人 | 回 …, as a person reads it
    measure: str               # stock | flow
    source: str
    values: list[int]
    available: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "name_ja": self.name_ja,
                "name_en": self.name_en, "unit": self.unit, "measure": self.measure,
                "source": self.source, "available": self.available, "values": self.values}


@dataclass
class Months:
    periods: list[Period]
    ends_utc: list[datetime] = field(init=False)

    def __post_init__(self) -> None:
        self.ends_utc = [p.end.astimezone(UTC) for p in self.periods]

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.periods]


def month_range(first: str | None, last: str | None, *, now: datetime | None = None) -> Months:
    """Months ``first``..``last`` inclusive (``YYYY-MM``); ``None`` (not given) means the twelve
    months ending with the current one (JST); an empty value is an error."""
    today = (now or utcnow()).astimezone(JST)
    end = parse_period(last if last is not None else f"{today:%Y-%m}")
    if first is not None:
        start = parse_period(first)
    else:
        index = end.start.year * 12 + end.start.month - 1 - 11
        start = parse_period(f"{index // 12:04d}-{index % 12 + 1:02d}")
    for p, name in ((start, "from"), (end, "to")):
        if len(p.label) != 7:
            raise InvalidRequest(f"{name} {p.label!r}: use a month, YYYY-MM",
                                 message_ja=f"{p.label} は月（YYYY-MM）で指定してください",
                                 code="invalid_period")
    if end.start < start.start:
        raise InvalidRequest("the range ends before it starts", code="invalid_period",
                             message_ja="期間の終わりが始まりより前です")
    periods = [start]
    while periods[-1].start < end.start:
        nxt = periods[-1].end
        periods.append(parse_period(f"{nxt:%Y-%m}"))
        if len(periods) > MAX_MONTHS:
            raise InvalidRequest(f"at most {MAX_MONTHS} months at a time",
                                 message_ja=f"一度に指定できるのは {MAX_MONTHS} か月までです",
                                 code="invalid_period")
    return Months(periods)


def months_ending(last: str | None, count: int, *, now: datetime | None = None) -> Months:
    """The ``count`` months (1..MAX_MONTHS) ending with ``last`` (None: the current month, JST)."""
    if not 1 <= count <= MAX_MONTHS:
        raise InvalidRequest(f"months must be 1-{MAX_MONTHS}", code="invalid_period",
                             message_ja=f"月数は1〜{MAX_MONTHS}で指定してください")
    today = (now or utcnow()).astimezone(JST)
    end = month_range(last, last).periods[0].start if last is not None else today
    index = end.year * 12 + end.month - 1 - (count - 1)
    return month_range(f"{index // 12:04d}-{index % 12 + 1:02d}", f"{end:%Y-%m}")


def stock(ends: list[datetime], spans: Iterable[tuple[datetime, datetime | None]]) -> list[int]:
    """How many spans [start, stop) hold at each of ``ends`` (a moment just before it: a span
    starting exactly at a month's end belongs to the next month)."""
    starts, stops = [], []
    for start, stop in spans:
        starts.append(start)
        if stop is not None:
            stops.append(stop)
    starts.sort()
    stops.sort()
    return [bisect_left(starts, e) - bisect_left(stops, e) for e in ends]


def flow(periods: list[Period], moments: Iterable[datetime]) -> list[int]:
    """How many ``moments`` fall in each period."""
    ordered = sorted(moments)
    return [bisect_left(ordered, p.end.astimezone(UTC)) - bisect_left(ordered, p.start.astimezone(UTC))
            for p in periods]


async def _columns(conn: aiosqlite.Connection, table: str) -> set[str] | None:
    """The table's columns, or None when this database has no such table."""
    try:
        async with conn.execute(f"SELECT * FROM {table} LIMIT 0") as cur:
            return {d[0] for d in cur.description}
    except aiosqlite.OperationalError:
        return None


class OutputIndicators:
    """Computes every output series; ``identity_dir``: where identity.db is (None: not used)."""

    def __init__(self, db: Database, identity_dir: Path | None = None) -> None:
        self.db = db
        self.identity_dir = identity_dir

    async def compute(self, months: Months) -> dict[str, Any]:
        series: list[Series] = []
        for part in (self._participants, self._services, self._datasets, self._agreements,
                     self._usage, self._api_calls, self._consents, self._linked):
            series.extend(await part(months))
        return {"months": months.labels, "outputs": [s.to_json() for s in series],
                "computed_at": iso(utcnow())}

    async def _participants(self, m: Months) -> list[Series]:
        rows = await self.db.fetchall(
            "SELECT type, status, created_at, updated_at, certified_at FROM participants")
        out = [Series("participants.total", "participants", "参加者（合計）", "Participants (all)",
                      "団体", "stock", "participants",
                      stock(m.ends_utc, ((from_iso(r["created_at"]), None) for r in rows)))]
        for kind in ParticipantType:
            ja, en = TYPE_NAMES[kind.value]
            out.append(Series(f"participants.{kind.value}", "participants", f"参加者（{ja}）",
                              f"Participants ({en})", "団体", "stock", "participants",
                              stock(m.ends_utc, ((from_iso(r["created_at"]), None)
                                                 for r in rows if r["type"] == kind.value))))
        certified = [(from_iso(r["certified_at"]),
                      from_iso(r["updated_at"]) if r["status"] == "suspended" else None)
                     for r in rows if r["certified_at"]]
        out.append(Series("participants.certified", "participants", "認定済みの参加者",
                          "Certified participants", "団体", "stock", "participants",
                          stock(m.ends_utc, ((a, b if b and b > a else None) for a, b in certified))))
        return out

    async def _services(self, m: Months) -> list[Series]:
        s = Series("services.certified", "services", "認定サービス", "Certified services", "件",
                   "stock", "services", [0] * len(m.periods), available=False)
        cols = await _columns(self.db.conn, "services")
        since = next((c for c in ("certified_at", "created_at", "registered_at")
                      if cols and c in cols), None)
        if since is None:
            return [s]
        rows = await self.db.fetchall(f"SELECT {since} FROM services WHERE {since} IS NOT NULL")
        s.values, s.available = stock(m.ends_utc, ((from_iso(r[0]), None) for r in rows)), True
        return [s]

    async def _datasets(self, m: Months) -> list[Series]:
        rows = await self.db.fetchall("SELECT status, doc, created_at, modified_at FROM datasets")
        spans: list[tuple[datetime, datetime | None]] = []
        themes: dict[str, list] = defaultdict(list)
        kinds: dict[str, list] = defaultdict(list)
        for r in rows:
            doc = json.loads(r["doc"])
            span = (from_iso(r["created_at"]),
                    from_iso(r["modified_at"]) if r["status"] == "withdrawn" else None)
            spans.append(span)
            for theme in doc.get("themes") or ():
                themes[theme].append(span)
            if doc.get("standard_type"):
                kinds[doc["standard_type"]].append(span)
        out = [Series("datasets.total", "datasets", "公開データセット（合計）",
                      "Published datasets (all)", "件", "stock", "datasets",
                      stock(m.ends_utc, spans))]
        out += [Series(f"datasets.theme.{t}", "datasets_theme", f"データセット（分野: {t}）",
                       f"Datasets (theme: {t})", "件", "stock", "datasets",
                       stock(m.ends_utc, themes[t])) for t in sorted(themes)]
        out += [Series(f"datasets.standard_type.{k}", "datasets_standard",
                       f"データセット（標準: {k}）", f"Datasets (standard type: {k})", "件",
                       "stock", "datasets", stock(m.ends_utc, kinds[k])) for k in sorted(kinds)]
        return out

    async def _agreements(self, m: Months) -> list[Series]:
        rows = await self.db.fetchall("SELECT agreement_id, MIN(notarised_at) FROM notarisations "
                                      "GROUP BY agreement_id")
        return [Series("agreements.notarised", "agreements", "公証された利用契約",
                       "Agreements notarised", "件", "flow", "notarisations",
                       flow(m.periods, (from_iso(r[1]) for r in rows)))]

    async def _usage(self, m: Months) -> list[Series]:
        transfers, records = [], []
        for p in m.periods:
            row = await self.db.fetchone(
                "SELECT COUNT(*), COALESCE(SUM(records), 0) FROM usage_records "
                "WHERE ended_at >= ? AND ended_at < ?",
                (iso(p.start.astimezone(UTC)), iso(p.end.astimezone(UTC))))
            assert row is not None
            transfers.append(row[0])
            records.append(row[1])
        return [Series("transfers", "transfers", "データ転送", "Transfers", "回", "flow",
                       "usage_records", transfers),
                Series("records", "records", "提供レコード", "Records provided", "件", "flow",
                       "usage_records", records)]

    async def _api_calls(self, m: Months) -> list[Series]:
        s = Series("api_calls", "api_calls", "API呼び出し", "API calls", "回", "flow",
                   "api_call_counts", [0] * len(m.periods), available=False)
        cols = await _columns(self.db.conn, "api_call_counts")
        if not cols or not {"day", "calls"} <= cols:
            return [s]
        values = []
        for p in m.periods:
            row = await self.db.fetchone(
                "SELECT COALESCE(SUM(calls), 0) FROM api_call_counts WHERE day >= ? AND day < ?",
                (f"{p.start:%Y-%m-%d}", f"{p.end:%Y-%m-%d}"))
            values.append(row[0] if row else 0)
        s.values, s.available = values, True
        return [s]

    async def _consents(self, m: Months) -> list[Series]:
        s = Series("consents.residents", "consents", "同意を得た住民（データセット別の合計）",
                   "Residents with consent (summed over datasets)", "人", "stock",
                   "consent_counts", [0] * len(m.periods), available=False)
        cols = await _columns(self.db.conn, "consent_counts")
        if not cols or not {"node", "dataset_id", "day", "residents"} <= cols:
            return [s]
        rows = await self.db.fetchall("SELECT node, dataset_id, day, residents FROM consent_counts "
                                      "ORDER BY day")
        values, latest, i = [], {}, 0
        for p in m.periods:
            last_day = f"{p.end:%Y-%m-%d}"      # exclusive
            while i < len(rows) and rows[i]["day"] < last_day:
                latest[(rows[i]["node"], rows[i]["dataset_id"])] = rows[i]["residents"]
                i += 1
            values.append(sum(latest.values()))
        s.values, s.available = values, True
        return [s]

    async def _linked(self, m: Months) -> list[Series]:
        s = Series("identity.linked_residents", "identity", "ID連携した住民",
                   "Residents with linked IDs", "人", "stock", "identity.linked_ids",
                   [0] * len(m.periods), available=False)
        path = self.identity_dir / "identity.db" if self.identity_dir else None
        if path is None or not path.exists():
            return [s]
        async with aiosqlite.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
            if await _columns(conn, "linked_ids") is None:
                return [s]
            async with conn.execute("SELECT person_id, linked_at FROM linked_ids "
                                    "ORDER BY person_id, linked_at") as cur:
                rows = await cur.fetchall()
        seconds: list[datetime] = []
        previous = None
        count = 0
        for person, at in rows:
            count = count + 1 if person == previous else 1
            previous = person
            if count == 2:
                seconds.append(from_iso(at))
        s.values, s.available = stock(m.ends_utc, ((t, None) for t in seconds)), True
        return [s]
