"""Bulk import (``connector dataset import``): a folder of CSV files for a host and its tenant,
idempotent re-runs, changed files, files of other municipalities, broken files, dry runs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from connector.datasets.bulk_import import checked_code, inspect_csv, match_layout, stem_slug
from mesh.errors import InvalidRequest

from .bulk_import_fixtures import layout_csv, mixed_folder, write
from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, http_json

HOST, TENANT, OTHER = "282103", "283819", "282014"


def test_encodings_layouts_and_codes(tmp_path: Path) -> None:
    files = mixed_folder(tmp_path)
    toilets, aed, budget = (inspect_csv(files[k]) for k in ("toilets", "aed", "budget"))
    assert (toilets.encoding, toilets.code, toilets.municipality, toilets.rows) == \
        ("utf-8-sig", HOST, "加古川市", 2)
    assert toilets.header[0] == "全国地方公共団体コード"        # the BOM is not part of the name
    assert (aed.encoding, aed.code, aed.municipality) == ("cp932", TENANT, "稲美町")
    assert (budget.encoding, budget.code, budget.header) == ("cp932", None, ["年度", "項目", "金額"])
    layout = match_layout(toilets.header)
    assert (layout.name, layout.conforms) == ("public_toilets", True)
    assert match_layout(budget.header) is None
    # a header missing a required column still names its layout, without conforming
    partial = match_layout([h for h in toilets.header if h != "名称"])
    assert (partial.title, partial.conforms) == ("公衆トイレ一覧", False)
    with pytest.raises(InvalidRequest, match="record 3 has 2 fields"):
        inspect_csv(files["broken"])


def test_municipality_code_rules(tmp_path: Path) -> None:
    assert checked_code("282103") == "282103"
    assert checked_code("11002") == "011002"       # the zero a spreadsheet dropped
    with pytest.raises(InvalidRequest, match="check digit"):
        checked_code("282104")
    # the most common value wins; a wrong check digit fails the file with its reason
    text = layout_csv("公衆トイレ一覧", "282103", "加古川市", rows=3)
    mixed = text.replace("282103", "283819", 2)     # one row names the tenant
    assert inspect_csv(write(tmp_path / "a.csv", mixed, "utf-8")).code == HOST
    bad = write(tmp_path / "b.csv", text.replace("282103", "282104"), "utf-8")
    with pytest.raises(InvalidRequest, match="municipality code column"):
        inspect_csv(bad)
    assert stem_slug("予算") == stem_slug("予算") != stem_slug("決算")
    assert stem_slug("Toilets 2025") == "toilets-2025"


async def _import(h: MeshHarness, node: str, *args: str) -> tuple[int, dict]:
    rc, out, err = await h.cli("connector", "dataset", "import", *args,
                               "--data-dir", str(h.root / node), "--json")
    assert out.strip(), err
    return rc, json.loads(out)


def _by_name(report: dict) -> dict[str, dict]:
    return {item["name"]: item for item in report["items"]}


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "logs" not in p.parts and not p.name.endswith(("-wal", "-shm")):
            digest.update(f"{p.relative_to(root)}:{p.stat().st_mtime_ns}".encode())
            digest.update(p.read_bytes())
    return digest.hexdigest()


async def _version(h: MeshHarness, dataset_id: str) -> int | None:
    body = await http_json(f"{h.http_url}/api/v1/datasets/{dataset_id}")
    return body.get("version") if body["_status"] == 200 else None


@pytest.mark.integration
async def test_folder_import_host_and_tenant(harness: MeshHarness, tmp_path: Path) -> None:
    h = harness
    await setup_catalog_mesh(h, publish=False)
    folder = tmp_path / "csv"
    files = mixed_folder(folder)

    rc, report = await _import(h, "kakogawa", str(folder))
    assert rc == 1                                   # a file failed: the exit code says so
    items = _by_name(report)
    assert report["counts"] == {"added": 3, "updated": 0, "unchanged": 0, "skipped": 1, "failed": 1}
    assert items["kakogawa_toilets.csv"]["dataset_id"] == "282103-public-toilets"
    assert items["kakogawa_toilets.csv"]["status"] == "added"
    assert (items["inami_aed.csv"]["publisher"], items["inami_aed.csv"]["status"]) == (TENANT, "added")
    assert items["予算.csv"]["publisher"] == HOST and items["予算.csv"]["status"] == "added"
    assert items["himeji_events.csv"]["status"] == "skipped"
    assert "publisher_not_allowed" in items["himeji_events.csv"]["reason"]
    assert items["broken.csv"]["status"] == "failed" and "3 行目" in items["broken.csv"]["reason_ja"]

    record = await http_json(f"{h.http_url}/api/v1/datasets/283819-aed")
    assert record["_status"] == 200 and record["publisher"] == TENANT
    assert record["title"]["ja"] == "稲美町 AED設置箇所一覧"
    assert record["standard_type"] == "AED設置箇所一覧" and record["spatial"] == [TENANT]
    assert record["source_check"]["status"] == "passed"
    assert await _version(h, "282014-events") is None           # nothing of 姫路市 published
    assert not (h.root / "kakogawa" / "publishers" / OTHER).exists()
    stored = json.loads((h.root / "kakogawa" / "publishers" / TENANT / "datasets" /
                         "283819-aed.json").read_text())
    assert stored["source"] == {"adapter": "csv", "path": str(files["aed"].absolute()),
                                "encoding": "auto"}

    # the same folder again: the same datasets, no new version
    rc, again = await _import(h, "kakogawa", str(folder))
    assert again["counts"] == {"added": 0, "updated": 0, "unchanged": 3, "skipped": 1, "failed": 1}
    assert await _version(h, "282103-public-toilets") == 1
    assert await _version(h, "283819-aed") == 1

    # a file rewritten with the same bytes (new mtime) is still unchanged
    files["aed"].write_bytes(files["aed"].read_bytes())
    _, touched = await _import(h, "kakogawa", str(folder))
    assert _by_name(touched)["inami_aed.csv"]["status"] == "unchanged"

    # one changed file → one new version, the rest unchanged
    write(files["toilets"], layout_csv("公衆トイレ一覧", HOST, "加古川市", rows=3), "utf-8-sig")
    _, changed = await _import(h, "kakogawa", str(folder))
    assert changed["counts"]["updated"] == 1 and changed["counts"]["unchanged"] == 2
    assert _by_name(changed)["kakogawa_toilets.csv"]["version"] == 2
    assert await _version(h, "282103-public-toilets") == 2
    assert await _version(h, "283819-aed") == 1

    # --dry-run: reports what would change and changes nothing, here or at the registry
    write(files["budget"], "年度,項目,金額\r\n2026,道路,1300\r\n", "cp932")
    (folder / "new_aed.csv").write_text(layout_csv("AED設置箇所一覧", HOST, "加古川市"))
    before = _tree_digest(h.root / "kakogawa")
    rc, dry = await _import(h, "kakogawa", str(folder), "--dry-run")
    assert dry["dry_run"] is True
    assert _by_name(dry)["予算.csv"]["status"] == "updated"
    assert _by_name(dry)["new_aed.csv"]["status"] == "added"
    assert _tree_digest(h.root / "kakogawa") == before
    assert await _version(h, "282103-aed") is None
    budget_id = _by_name(dry)["予算.csv"]["dataset_id"]
    assert await _version(h, budget_id) == 1

    # the text summary: Japanese and English, reasons included
    rc, out, _ = await h.cli("connector", "dataset", "import", str(folder), "--data-dir",
                             str(h.root / "kakogawa"), "--dry-run")
    assert "追加/added: 2" in out and "更新/updated: 1" in out and "失敗/failed: 1" in out
    assert "レジストリが判断します" in out         # 姫路市's file: hosting unchecked in a dry run
    assert "broken.csv" in out and "項目数" in out


@pytest.mark.parametrize(("edition", "edition_id"), [("2019", "推奨データセット-2019"),
                                                     ("自治体標準", "自治体標準オープンデータセット")])
def test_an_older_layout_is_declared_with_its_edition(tmp_path: Path, edition: str,
                                                      edition_id: str) -> None:
    import csv
    import io

    from connector.datasets.bulk_import import describe_file
    from mesh.datasets import parse_description, standard_errors
    from mesh.standards import get_standard

    from .layout_fixtures import conforming_csv

    layout = get_standard("公衆トイレ一覧", edition)
    rows = list(csv.reader(io.StringIO(conforming_csv(layout))))
    codes = ("全国地方公共団体コード", "都道府県コード又は市区町村コード")
    at = next(i for i, h in enumerate(rows[0]) if h in codes)
    for row in rows[1:]:
        row[at] = HOST
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    path = write(tmp_path / "old.csv", out.getvalue(), "cp932")
    facts = inspect_csv(path)
    found = match_layout(facts.header)
    assert (found.title, found.edition, found.conforms) == ("公衆トイレ一覧", edition_id, True)
    doc = describe_file(path, facts, publisher=HOST, code=facts.code, municipality="加古川市",
                        layout=found, dataset_id=f"{HOST}-old-toilets")
    assert doc["standard"] == {"layout": "公衆トイレ一覧", "edition": edition_id}
    assert "standard_type" not in doc
    published = parse_description({k: v for k, v in doc.items() if k not in ("source", "source_base")},
                                  standard_check=standard_errors)
    assert published["standard"]["edition"] == edition_id
    # a 2026-model file is still declared as standard_type, as before
    new = match_layout(inspect_csv(write(tmp_path / "new.csv", layout_csv(
        "公衆トイレ一覧", HOST, "加古川市"), "utf-8")).header)
    assert new.declaration() == {"standard_type": "公衆トイレ一覧"}
