"""``areamesh demo --federation --once`` as a real process: two meshes federate, 大阪府 fetches
姫路市's AED list from the other mesh, and its NGSI-LD facade answers "AEDs within 500 m of
姫路駅" with exactly the AEDs the fixture puts there (computed here, independently)."""

from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path

import pytest

from areamesh.demo_data.himeji_aed_2019 import HIMEJI_CODE, write_himeji_aed_csv
from areamesh.processes import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
STATION = (134.6906, 34.8275)       # 姫路駅 (longitude, latitude), as the demo asks


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance on the mean Earth radius (IUGG)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 6_371_008.8 * math.asin(math.sqrt(a))


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that name ``text`` (the demo's work dir)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and int(pid) != os.getpid():
            found.append(f"{pid}: {cmdline}")
    return found


async def test_federation_demo_fetches_across_meshes_and_answers_the_ngsi_ld_query(tmp_path):
    work = tmp_path / "demo"
    rc, out, err = await run_cli("demo", "--federation", "--once", "--workdir", str(work),
                                 timeout=280)
    assert rc == 0, out + err
    assert _processes_mentioning(str(work)) == []      # registries and connectors all stopped

    # the fixture: 姫路市's list as the demo generates it (2019 layout, Shift_JIS)
    source = tmp_path / "aed.csv"
    write_himeji_aed_csv(source, rows=40)
    with source.open(encoding="cp932", newline="") as f:
        fixture = {HIMEJI_CODE + r["NO"]: r for r in csv.DictReader(f)}

    # federated, both sides; found by a federated search, refused without a mesh constraint
    assert "[hyogo] 連携先 / federation osaka: active" in out
    assert "[osaka] 連携先 / federation hyogo: active" in out
    assert re.search(r"- 姫路市 AED設置箇所一覧 \(himeji-aed, 姫路市, メッシュ / mesh hyogo,", out)
    assert "open-use: 合意は成立しませんでした" in out and "TERMINATED" in out
    assert "kouiki-bousai（目的: 防災）: 合意が成立しました" in out
    notes = re.findall(r"\[(hyogo|osaka)\] 公証 / notarised: 提供者 / provider (\S+), 利用者 / "
                       r"consumer (\S+) ", out)
    assert sorted(n[0] for n in notes) == ["hyogo", "osaka"]
    assert {n[1:] for n in notes} == {("urn:areamesh:mesh:hyogo:org:282014:node:main",
                                       "urn:areamesh:mesh:osaka:org:270008:node:main")}

    # every AED row arrived at 大阪府's connector, translated into the standard model
    received = work / "osaka" / "osaka" / "downloads" / "himeji-aed.csv"
    with received.open(encoding="utf-8", newline="") as f:
        rows = {r["ID"]: r for r in csv.DictReader(f)}
    assert rows.keys() == fixture.keys()
    for ident, row in rows.items():
        assert row["名称"] == fixture[ident]["名称"]
        assert float(row["緯度"]) == pytest.approx(float(fixture[ident]["緯度"]), abs=1e-9)
        assert float(row["経度"]) == pytest.approx(float(fixture[ident]["経度"]), abs=1e-9)

    # the NGSI-LD answer: exactly the fixture's AEDs within 500 m of 姫路駅
    distances = {ident: _metres(*STATION, float(r["経度"]), float(r["緯度"]))
                 for ident, r in fixture.items()}
    within = {f"urn:ngsi-ld:AED:{HIMEJI_CODE}-{i}" for i, d in distances.items() if d <= 500}
    assert 0 < len(within) < len(fixture)
    assert not [d for d in distances.values() if 490 < d < 510]   # no case on the edge
    count = int(re.search(r"回答 / answer: HTTP 200, (\d+) 件", out).group(1))
    answered = re.findall(r"^  - (urn:ngsi-ld:AED:\S+)  ", out, re.M)
    assert count == len(answered)
    assert set(answered) == within
    # metered at both registries, by each side's own report
    assert "[hyogo] 提供 / provided: 40 件" in out and "[osaka] 受領 / received: 40 件" in out
    assert "■ 結果 / result: 2つのメッシュが連携し" in out
