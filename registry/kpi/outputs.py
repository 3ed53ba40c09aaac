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
- ``services.certified`` — stock — ``services`` (service registration, registry/datamap/):
  services registered (``created_at``) before the end by a participant that is certified at the
  end, by the rule of ``participants.certified``; a service registered before its operator was
  certified counts from the certification, and none of a suspended operator's services counts.
- ``datasets.total``, ``datasets.theme.<分野>``, ``datasets.standard_type.<型>`` — stock —
  ``datasets`` published before the end and not withdrawn by then (a withdrawal's time is
  ``modified_at``); themes and standard type as the dataset's current description says.
- ``agreements.notarised`` — flow — ``notarisations``: agreements first notarised in the month.
- ``transfers``, ``records`` — flow — ``usage_records``: transfers that ended in the month and
  their records, as ``/api/v1/usage`` counts them.
- ``api_calls`` — flow — ``api_call_counts`` (API-call metering, registry/metering/api_calls.py):
  calls to the public and CKAN APIs on the month's JST days, anonymous ones included.
- ``consents.residents`` — stock — ``consent_counts`` (consent counts in the connectors' signed
  usage reports): per connector and dataset, the latest count reported on or before the month's
  last day, summed over datasets (a resident who consented for two datasets counts twice).
- ``identity.linked_residents`` — stock — ``identity/identity.db``: residents with the IDs of
  two or more platforms linked, from the second link's time (links undone since are not
  counted). A registry whose identity service has never run has no identity.db, and no links.

What the stores do not keep is not reconstructed: a participant suspended and reinstated
counts as certified from its latest certification, the suspension forgotten (and so do its
services); a service removed counts in no month, earlier ones included; a dataset withdrawn
and published again counts from its first publication and as published throughout. Months are
``YYYY-MM``; at most ``MAX_MONTHS`` per request.
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
from mesh.datasets import declared_standard
from mesh.db import Database
from mesh.errors import InvalidRequest
from mesh.ids import ParticipantType
from registry.database import database_url
from registry.identity.store import open_identity_db
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

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "group": self.group, "name_ja": self.name_ja,
                "name_en": self.name_en, "unit": self.unit, "measure": self.measure,
                "source": self.source, "values": self.values}


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


Span = tuple[datetime, datetime | None]


def certified_spans(rows: Iterable[Any]) -> dict[str, Span]:
    """Participant id → (certified from, suspended from or None), for the rows of participants
    that were ever certified: certified at ``certified_at``, suspended at ``updated_at`` when the
    status is ``suspended`` (the latest suspension; nothing earlier is kept)."""
    out: dict[str, Span] = {}
    for r in rows:
        if r["certified_at"]:
            start = from_iso(r["certified_at"])
            stop = from_iso(r["updated_at"]) if r["status"] == "suspended" else None
            out[r["id"]] = (start, stop if stop and stop > start else None)
    return out


class OutputIndicators:
    """Computes every output series; ``identity_dir``: where identity.db is (DATA_DIR/identity)."""

    def __init__(self, db: Database, identity_dir: Path) -> None:
        self.db = db
        self.identity_dir = identity_dir

    async def compute(self, months: Months) -> dict[str, Any]:
        participants = await self.db.fetchall(
            "SELECT id, type, status, created_at, updated_at, certified_at FROM participants")
        certified = certified_spans(participants)
        series = [*self._participants(months, participants, certified),
                  *await self._services(months, certified)]
        for part in (self._datasets, self._agreements, self._usage, self._api_calls,
                     self._consents, self._linked):
            series.extend(await part(months))
        return {"months": months.labels, "outputs": [s.to_json() for s in series],
                "computed_at": iso(utcnow())}

    @staticmethod
    def _participants(m: Months, rows: list[Any], certified: dict[str, Span]) -> list[Series]:
        out = [Series("participants.total", "participants", "参加者（合計）", "Participants (all)",
                      "団体", "stock", "participants",
                      stock(m.ends_utc, ((from_iso(r["created_at"]), None) for r in rows)))]
        for kind in ParticipantType:
            ja, en = TYPE_NAMES[kind.value]
            out.append(Series(f"participants.{kind.value}", "participants", f"参加者（{ja}）",
                              f"Participants ({en})", "団体", "stock", "participants",
                              stock(m.ends_utc, ((from_iso(r["created_at"]), None)
                                                 for r in rows if r["type"] == kind.value))))
        out.append(Series("participants.certified", "participants", "認定済みの参加者",
                          "Certified participants", "団体", "stock", "participants",
                          stock(m.ends_utc, certified.values())))
        return out

    async def _services(self, m: Months, certified: dict[str, Span]) -> list[Series]:
        spans: list[Span] = []
        for r in await self.db.fetchall("SELECT operator_id, created_at FROM services"):
            if r["operator_id"] not in certified:
                continue
            since, until = certified[r["operator_id"]]
            start = max(from_iso(r["created_at"]), since)
            if until is None or until > start:
                spans.append((start, until))
        return [Series("services.certified", "services", "認定サービス", "Certified services", "件",
                       "stock", "services", stock(m.ends_utc, spans))]

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
            if declared := declared_standard(doc):     # standard_type or standard: {layout, …}
                kinds[declared["layout"]].append(span)
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
        values = []
        for p in m.periods:
            row = await self.db.fetchone(
                "SELECT COALESCE(SUM(calls), 0) FROM api_call_counts WHERE day >= ? AND day < ?",
                (f"{p.start:%Y-%m-%d}", f"{p.end:%Y-%m-%d}"))
            assert row is not None
            values.append(row[0])
        return [Series("api_calls", "api_calls", "API呼び出し", "API calls", "回", "flow",
                       "api_call_counts", values)]

    async def _consents(self, m: Months) -> list[Series]:
        rows = await self.db.fetchall("SELECT node, dataset_id, day, residents FROM consent_counts "
                                      "ORDER BY day")
        values, latest, i = [], {}, 0
        for p in m.periods:
            last_day = f"{p.end:%Y-%m-%d}"      # exclusive
            while i < len(rows) and rows[i]["day"] < last_day:
                latest[(rows[i]["node"], rows[i]["dataset_id"])] = rows[i]["residents"]
                i += 1
            values.append(sum(latest.values()))
        return [Series("consents.residents", "consents", "同意を得た住民（データセット別の合計）",
                       "Residents with consent (summed over datasets)", "人", "stock",
                       "consent_counts", values)]

    async def _linked(self, m: Months) -> list[Series]:
        seconds: list[datetime] = []
        path = self.identity_dir / "identity.db"
        sql = "SELECT person_id, linked_at FROM linked_ids ORDER BY person_id, linked_at"
        rows: list = []
        if database_url(self.identity_dir.parent) is not None:     # PostgreSQL
            async with open_identity_db(self.identity_dir) as db:
                rows = await db.fetchall(sql)
        elif path.exists():       # the identity service creates it when it first runs
            async with aiosqlite.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
                async with conn.execute(sql) as cur:
                    rows = list(await cur.fetchall())
        if rows:
            previous, count = None, 0
            for person, at in rows:
                count = count + 1 if person == previous else 1
                previous = person
                if count == 2:
                    seconds.append(from_iso(at))
        return [Series("identity.linked_residents", "identity", "ID連携した住民",
                       "Residents with linked IDs", "人", "stock", "identity.linked_ids",
                       stock(m.ends_utc, ((t, None) for t in seconds)))]
