"""Residents' consent on the connector (DESIGN §8): the store, the per-batch filter, the CLI.

The names below are loaded on first use: the filter needs pyarrow, and importing a light
submodule (``connector.consent.counts`` at start-up, ``connector.consent.cli``) must not load it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"ConsentFilter": "filter", "FilteredBatch": "filter", "SourceSubjects": "filter",
          "ConsentScope": "scope", "Consent": "store", "ConsentEvent": "store",
          "ConsentGrant": "store", "ConsentStore": "store"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
