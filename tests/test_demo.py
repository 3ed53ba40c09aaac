"""``areamesh demo --once``: registry + three connectors that see each other."""

from __future__ import annotations

import pytest

from areamesh.processes import run_cli

pytestmark = pytest.mark.integration


async def test_demo_once_enrols_three_connectors_that_see_each_other():
    rc, out, err = await run_cli("demo", "--once", timeout=120)
    assert rc == 0, out + err
    for name in ("大阪府", "姫路市", "加古川市"):
        assert f"■ {name} が参加" in out
    ok_lines = [line for line in out.splitlines() if line.strip().startswith("OK ")]
    assert len(ok_lines) == 6, out
    assert not [line for line in out.splitlines() if line.strip().startswith("NG ")]
    assert "every connector sees the other two" in out
