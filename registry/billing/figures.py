"""Where the metered figures of a billing period come from.

The allocation takes figures as a plain mapping (participant id → figure name → int, the names
in ``rules.FIGURES``), so tests and other callers pass them in. The CLI and the console ask a
``FiguresSource``: the metering package's ``organisation_figures`` when it is there
(``registry/metering/figures.py``), else ``ledger_figures``, which reads what today's
UsageLedger knows (records, transfers and bytes provided and received); API calls and consented
records are not metered there and count as 0.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from mesh.db import Database
from registry.billing.rules import FIGURES
from registry.metering.usage import Period, UsageLedger


class FiguresSource(Protocol):
    async def __call__(self, db: Database, period: Period) -> dict[str, dict[str, int]]:
        """Figures per participant for ``period``: every name in FIGURES may be missing (0);
        participants without any figure may be left out. Reads only; never raises for an
        empty period."""


async def ledger_figures(db: Database, period: Period) -> dict[str, dict[str, int]]:
    """Figures from UsageLedger.summary: provided/consumed transfers, records and bytes."""
    summary = await UsageLedger(db).summary(period, {})
    out: dict[str, dict[str, int]] = {}
    for row in summary["participants"]:
        figures = dict.fromkeys(FIGURES, 0)
        for side, suffix in (("provided", "provided"), ("consumed", "received")):
            figures[f"records_{suffix}"] = int(row[side]["records"])
            figures[f"transfers_{suffix}"] = int(row[side]["transfers"])
            figures[f"bytes_{suffix}"] = int(row[side]["bytes"])
        out[row["id"]] = figures
    return out


def default_source() -> FiguresSource:
    """``registry.metering.figures.organisation_figures`` if importable, else ledger_figures."""
    try:
        module = importlib.import_module("registry.metering.figures")
        return module.organisation_figures
    except (ImportError, AttributeError):
        return ledger_figures
