"""One KPI report: the output series and the outcome indicators over a range of months, as
GET /api/v1/kpi, the console page and ``areamesh registry kpi export`` all give it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mesh.db import Database
from registry.kpi.outcomes import OutcomeIndicator, OutcomeStore
from registry.kpi.outputs import Months, OutputIndicators


async def kpi_report(db: Database, identity_dir: Path, months: Months
                     ) -> tuple[dict[str, Any], list[OutcomeIndicator]]:
    """(outputs as ``OutputIndicators.compute`` gives them, every outcome indicator)."""
    outputs = await OutputIndicators(db, identity_dir).compute(months)
    return outputs, await OutcomeStore(db).indicators()


def report_json(outputs: dict[str, Any], outcomes: list[OutcomeIndicator]) -> dict[str, Any]:
    months = outputs["months"]
    return {**outputs, "outcomes": [{**o.to_json(), "in_range": [o.values.get(m) for m in months]}
                                    for o in outcomes]}
