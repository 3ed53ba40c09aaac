"""An idle connector and every CLI call stay light: heavy libraries load only where used.

Importing pyarrow/numpy up front once doubled the idle connector's memory (69 → 158 MB) and made
every ``areamesh`` call four times slower (0.19 → 0.85 s); this catches it coming back."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "pyarrow", "pandas", "rapidfuzz")  # jntajis (2 ms) is the identity service's own


@pytest.mark.parametrize("module", ["connector.app", "registry.app", "areamesh.cli"])
def test_startup_imports_no_heavy_library(module):
    code = (f"import sys, {module}; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "", f"importing {module} loads {loaded.stdout.strip()}"


def test_the_console_transfer_pages_build_without_the_data_plane(tmp_path):
    """The transfer pages (list, progress JSON, fetch form) and the fetch lock need no pyarrow:
    ``Fetcher`` is imported when a console fetch starts. (The whole HTTP app still loads it,
    through the dataset and portal areas: connector/web/datasets/service.py,
    connector/web/portal/consents.py.)"""
    code = ("import sys; from pathlib import Path; from types import SimpleNamespace; "
            "from aiohttp import web; from connector.web.transfers import add_transfers_pages; "
            f"add_transfers_pages(web.Application(), SimpleNamespace(config=SimpleNamespace("
            f"data_dir=Path({str(tmp_path)!r})))); "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "", f"the transfer pages load {loaded.stdout.strip()}"
