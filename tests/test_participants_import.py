"""``areamesh registry participant import``: the country's 1,788 local public bodies from the
shipped list of 全国地方公共団体コード, on a fresh ``registry init``, through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from registry.participants_import import (
    NORTHERN_TERRITORIES,
    SHIPPED_LIST,
    is_designated_city_ward,
    read_body_list,
)

from .conftest import MeshHarness

SPECIAL_WARDS = {"131016": "千代田区", "131041": "新宿区", "131237": "江戸川区"}


@pytest.fixture
async def fresh(tmp_path: Path) -> MeshHarness:
    h = MeshHarness(tmp_path)
    rc, _, err = await h.cli("registry", "init", "--data-dir", str(h.registry_dir),
                             "--name", "テスト運営組織", "--mesh-id", "testmesh")
    assert rc == 0, err
    return h


async def run_import(h: MeshHarness, *extra: str) -> tuple[int, str, str]:
    return await h.cli("registry", "participant", "import", "--data-dir", str(h.registry_dir),
                       *extra)


def participants(h: MeshHarness) -> dict[str, tuple[str, str, str | None, str]]:
    with sqlite3.connect(h.registry_dir / "registry.db") as db:
        return {r[0]: (r[1], r[2], r[3], r[4])
                for r in db.execute("SELECT id, name, type, reading, status FROM participants")}


def audit_actions(h: MeshHarness) -> list[tuple[str, str, dict]]:
    with sqlite3.connect(h.registry_dir / "registry.db") as db:
        return [(r[0], r[1], json.loads(r[2])) for r in
                db.execute("SELECT action, outcome, details FROM admin_audit ORDER BY seq")]


def test_the_shipped_list_holds_1788_bodies() -> None:
    listed = read_body_list()
    types = [b.type for b in listed.bodies]
    assert (len(listed.bodies), types.count("prefecture"), types.count("municipality")) == \
        (1788, 47, 1741)
    assert (listed.wards, listed.northern) == (168, 6)
    codes = {b.code for b in listed.bodies}
    assert "011011" not in codes and "281018" not in codes       # 札幌市中央区, 神戸市東灘区
    assert {"011002", "281000", "141305", "271403"} <= codes      # the designated cities
    assert set(SPECIAL_WARDS) <= codes and not NORTHERN_TERRITORIES & codes
    assert is_designated_city_ward("011100", "札幌市清田区")
    assert not is_designated_city_ward("131016", "千代田区")
    assert not is_designated_city_ward("141305", "川崎市")


async def test_import_on_a_fresh_registry(fresh: MeshHarness) -> None:
    rc, out, err = await run_import(fresh, "--json")
    assert rc == 0, err
    summary = json.loads(out)
    assert (summary["added"], summary["prefectures_added"], summary["municipalities_added"],
            summary["unchanged"], summary["differing"]) == (1788, 47, 1741, 0, 0)
    rows = participants(fresh)
    assert len(rows) == 1788
    assert sum(t == "prefecture" for _, t, _, _ in rows.values()) == 47
    assert rows["282014"] == ("姫路市", "municipality", "ヒメジシ", "pending")
    assert rows["280003"][:2] == ("兵庫県", "prefecture")
    for code, name in SPECIAL_WARDS.items():
        assert rows[code][:2] == (name, "municipality")
    assert sum(1 for c in rows if c[:2] == "13" and 100 <= int(c[2:5]) <= 199) == 23
    assert not [c for c in rows if c[:2] != "13" and 100 <= int(c[2:5]) <= 199
                and rows[c][0].endswith("区")], "a designated city's ward was imported"
    assert not NORTHERN_TERRITORIES & set(rows)

    rc, out, err = await run_import(fresh)            # idempotent, summary in ja and en
    assert rc == 0, err
    assert "追加 0" in out and "登録済みで同名 1788" in out
    assert "added 0 " in out and "unchanged 1788" in out
    assert len(participants(fresh)) == 1788
    audits = audit_actions(fresh)
    assert [(a, o) for a, o, _ in audits] == [("participant.import", "ok")] * 2
    assert (audits[0][2]["added"], audits[1][2]["added"], audits[1][2]["unchanged"]) == \
        (1788, 0, 1788)


async def test_existing_names_are_kept_and_reported(fresh: MeshHarness) -> None:
    rc, _, err = await fresh.cli("registry", "participant", "add", "--data-dir",
                                 str(fresh.registry_dir), "--id", "282014", "--name", "姫路",
                                 "--type", "municipality")
    assert rc == 0, err
    rc, _, err = await fresh.cli("registry", "participant", "add", "--data-dir",
                                 str(fresh.registry_dir), "--id", "282103", "--name", "加古川市",
                                 "--type", "municipality")
    assert rc == 0, err
    rc, out, err = await run_import(fresh, "--only-prefecture", "28")
    assert rc == 0, err
    assert "追加 40" in out and "登録済みで同名 1" in out and "名称が異なる 1" in out
    assert "282014" in out and "'姫路'" in out and "'姫路市'" in out
    rows = participants(fresh)
    assert len(rows) == 42 and all(c.startswith("28") for c in rows)
    assert rows["282014"][0] == "姫路"                 # not overwritten
    rc, out, err = await run_import(fresh, "--only-prefecture", "兵庫県", "--json")
    assert rc == 0, err
    assert json.loads(out)["differing_names"] == [
        {"id": "282014", "registered": "姫路", "listed": "姫路市"}]


async def test_dry_run_writes_nothing(fresh: MeshHarness) -> None:
    rc, out, err = await run_import(fresh, "--dry-run", "--json")
    assert rc == 0, err
    assert json.loads(out)["added"] == 1788 and json.loads(out)["dry_run"] is True
    assert participants(fresh) == {} and audit_actions(fresh) == []


async def test_a_bad_check_digit_fails_naming_the_row(fresh: MeshHarness, tmp_path: Path) -> None:
    header = SHIPPED_LIST.read_text(encoding="utf-8").splitlines()[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([header, "280003,兵庫県,兵庫県,ヒョウゴケン",
                              "282015,兵庫県,姫路市,ヒメジシ", "282103,兵庫県,加古川市,カコガワシ"])
                   + "\n", encoding="utf-8")
    rc, _out, err = await run_import(fresh, "--file", str(bad))
    assert rc != 0
    assert "line 3" in err and "282015" in err and "check digit" in err, err
    assert participants(fresh) == {}
    assert [(a, o) for a, o, _ in audit_actions(fresh)] == [
        ("participant.import", "invalid_participant_id")]


async def test_a_small_file_of_its_own(fresh: MeshHarness, tmp_path: Path) -> None:
    own = tmp_path / "own.csv"
    own.write_text("code,name\n280003,兵庫県\n281000,神戸市\n281018,神戸市東灘区\n",
                   encoding="utf-8")
    rc, out, err = await run_import(fresh, "--file", str(own), "--json")
    assert rc == 0, err
    assert json.loads(out)["skipped"]["designated_city_wards"] == 1
    assert participants(fresh) == {"280003": ("兵庫県", "prefecture", None, "pending"),
                                   "281000": ("神戸市", "municipality", None, "pending")}
    rc, _, err = await run_import(fresh, "--only-prefecture", "atlantis")
    assert rc != 0 and "atlantis" in err
