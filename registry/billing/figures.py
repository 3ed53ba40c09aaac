"""Where the metered figures of a billing period come from.

The allocation takes figures as a plain mapping (participant id → figure name → int, the names
in ``rules.FIGURES``), so tests and other callers pass them in. The CLI and the console read the
registry's metering (``registry.metering.figures.organisation_figures``): records, transfers and
bytes provided and received per organisation (a hosted tenant apart from its host), API calls
and consented records held.
"""

from __future__ import annotations

from typing import Protocol

from mesh.db import Database
from registry.metering.figures import organisation_figures
from registry.metering.usage import Period


class FiguresSource(Protocol):
    async def __call__(self, db: Database, period: Period) -> dict[str, dict[str, int]]:
        """Figures per participant for ``period``: every name in FIGURES may be missing (0);
        participants without any figure may be left out. Reads only; never raises for an
        empty period."""


def default_source() -> FiguresSource:
    """The registry's own metering."""
    return organisation_figures
