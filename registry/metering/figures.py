"""Per-organisation metered figures for one period: what billing, the KPI page and the usage API
read (issue 14, part 1; appendix 4-4, 4-5).

Whose figures: the *organisation*, not the node. A hosted tenant (共同利用) is counted apart from
its host: the provider side of a transfer is the dataset's publisher in the catalog
(``usage_records.provider_org``), the consumer side the consuming participant
(``usage_records.consumer_org``; agreements name no tenant on the consumer side, so that is the
consumer node's participant). Transfers, records and bytes come from the provider's reports,
which are authoritative (they count against the agreement's limits); the consumer's reports only
cross-check them (registry/metering/crosscheck.py).

Periods are ``registry.metering.usage.Period`` (JST calendar periods). A transfer belongs to the
period its end falls in; API calls and consent counts to their JST day.
"""

from __future__ import annotations

from datetime import UTC, timedelta

from mesh.clock import iso
from mesh.db import Database
from registry.metering.usage import CONSUMER_ORG, PROVIDER_ORG, Period

FIGURES = ("records_provided", "records_received", "transfers_provided", "transfers_received",
           "bytes_provided", "bytes_received", "api_calls", "consented_records")


def period_bounds(period: Period) -> tuple[str, str]:
    """(start, end) of ``period`` as UTC ISO strings, for ``ended_at`` columns."""
    return iso(period.start.astimezone(UTC)), iso(period.end.astimezone(UTC))


def period_days(period: Period) -> tuple[str, str]:
    """(first, last) JST day of ``period``, inclusive, as YYYY-MM-DD, for ``day`` columns."""
    return f"{period.start:%Y-%m-%d}", f"{period.end - timedelta(days=1):%Y-%m-%d}"


async def organisation_figures(db: Database, period: Period) -> dict[str, dict[str, int]]:
    """Every participant of the registry → its figures over ``period``, all ints, zero when
    nothing happened (a participant without activity is present with zeros)::

        {"131008": {"records_provided": 1200,  # records of its datasets that left providers
                    "records_received": 0,     # records transfers delivered to it
                    "transfers_provided": 3, "transfers_received": 0,
                    "bytes_provided": 52000, "bytes_received": 0,
                    "api_calls": 41,           # public + CKAN API calls with its participant keys
                    "consented_records": 250}, # residents with a valid consent, per personal
         ...}                                  # dataset it publishes, summed over them

    ``consented_records`` is a stock, not a flow: for each (node, dataset) the count of the latest
    day in the period that has a report. Anonymous and operator-key API calls belong to no
    organisation (``api_call_totals`` has them). An organisation that appears in a report but is
    no longer a participant is still listed."""
    start, end = period_bounds(period)
    first, last = period_days(period)
    out: dict[str, dict[str, int]] = {}

    def entry(pid: str) -> dict[str, int]:
        return out.setdefault(pid, dict.fromkeys(FIGURES, 0))

    for row in await db.fetchall("SELECT id FROM participants ORDER BY id"):
        entry(row["id"])
    for side, column in (("provided", PROVIDER_ORG), ("received", CONSUMER_ORG)):
        for row in await db.fetchall(
                f"SELECT {column} AS pid, COUNT(*) AS t, COALESCE(SUM(records), 0) AS r, "
                "COALESCE(SUM(bytes), 0) AS b FROM usage_records "
                f"WHERE ended_at >= ? AND ended_at < ? GROUP BY {column}", (start, end)):
            e = entry(row["pid"])
            e[f"transfers_{side}"] = int(row["t"])
            e[f"records_{side}"] = int(row["r"])
            e[f"bytes_{side}"] = int(row["b"])
    for row in await db.fetchall(
            "SELECT k.owner AS pid, SUM(c.calls) AS n FROM api_call_counts c "
            "JOIN api_keys k ON k.id = c.key_id AND k.kind = 'participant' "
            "WHERE c.day >= ? AND c.day <= ? GROUP BY k.owner", (first, last)):
        entry(row["pid"])["api_calls"] = int(row["n"])
    for row in await db.fetchall(
            "SELECT c.publisher_id AS pid, SUM(c.residents) AS n FROM consent_counts c "
            "WHERE c.day = (SELECT MAX(l.day) FROM consent_counts l WHERE l.node = c.node "
            "AND l.dataset_id = c.dataset_id AND l.day >= ? AND l.day <= ?) "
            "GROUP BY c.publisher_id", (first, last)):
        entry(row["pid"])["consented_records"] = int(row["n"])
    return out


async def api_call_totals(db: Database, period: Period) -> dict[str, int]:
    """API calls over ``period`` by who made them: ``participant``, ``operator``, ``anonymous``
    (and ``unknown`` for keys deleted since), and ``total``."""
    first, last = period_days(period)
    totals = {"participant": 0, "operator": 0, "anonymous": 0, "unknown": 0}
    for row in await db.fetchall(
            "SELECT CASE WHEN c.key_id = '' THEN 'anonymous' ELSE COALESCE(k.kind, 'unknown') END "
            "AS who, SUM(c.calls) AS n FROM api_call_counts c LEFT JOIN api_keys k "
            "ON k.id = c.key_id WHERE c.day >= ? AND c.day <= ? GROUP BY who", (first, last)):
        totals[row["who"]] = int(row["n"])
    totals["total"] = sum(totals.values())
    return totals
