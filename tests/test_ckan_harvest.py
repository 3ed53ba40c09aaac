"""Harvesting CKAN portals into the bulk import: the registry's own CKAN API and a recorded
municipal portal (package_search pages, organisations, CSV resources, Japanese titles)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from connector.datasets.bulk_import import Item, Outcome
from connector.datasets.ckan_harvest import action_base, harvest_items, is_csv
from connector.node_state import NodeState

from .bulk_import_fixtures import RecordedPortal, layout_csv
from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, http_json

pytestmark = pytest.mark.integration


def test_action_base_and_csv_resources() -> None:
    for url in ("https://opendata.example.lg.jp", "https://opendata.example.lg.jp/",
                "https://opendata.example.lg.jp/api/3/action/package_search?q=x"):
        assert action_base(url) == "https://opendata.example.lg.jp/api/3/action"
    assert is_csv({"format": "CSV", "url": "https://x/a"})
    assert is_csv({"format": "", "url": "https://x/toilet.csv?v=2"})
    assert is_csv({"mimetype": "text/csv; charset=Shift_JIS", "url": "https://x/a"})
    assert not is_csv({"format": "PDF", "url": "https://x/a.csv"})


async def test_harvest_registry_ckan_api(harness: MeshHarness, tmp_path: Path) -> None:
    """The registry's own CKAN-compatible API: every package is paged through (2 a page) and,
    having only the connector's stream resource, skipped with the reason."""
    h = harness
    await setup_catalog_mesh(h)
    count = (await http_json(f"{h.http_url}/api/3/action/package_search?rows=0"))["result"]["count"]
    assert count >= 3
    state = NodeState.load(h.root / "kakogawa")
    items = await harvest_items(h.http_url, tmp_path, state, data_dir=h.root / "kakogawa", rows=2)
    assert len(items) == count
    assert all(isinstance(i, Outcome) and i.status == "skipped" and "CSV" in i.reason
               for i in items)
    names = {i.name for i in items}
    assert "himeji-aed" in names


async def _portal() -> tuple[RecordedPortal, object]:
    portal = RecordedPortal()
    kakogawa = {"name": "kakogawa-city", "title": "加古川市"}
    inami = {"name": "283819", "title": "稲美町"}
    portal.package("koshu-toilet", "公衆トイレ一覧", kakogawa, [
        {"name": "公衆トイレ一覧（CSV）", "format": "CSV",
         "url": portal.add_csv("toilet.csv", layout_csv("公衆トイレ一覧", "282103", "加古川市")
                               .encode("cp932"))},
        {"name": "公衆トイレ一覧（PDF）", "format": "PDF", "url": "{base}/dataset/files/toilet.pdf"}],
        notes="市内の公衆トイレの位置と設備の一覧です。", tags=("トイレ", "バリアフリー"))
    portal.package("aed", "AED設置箇所一覧", inami, [
        {"name": "AED", "format": "csv",
         "url": portal.add_csv("aed.csv", layout_csv("AED設置箇所一覧", "283819", "稲美町")
                               .encode("utf-8-sig"))}],
        notes="町内のAED設置箇所", tags=("AED",), license_id="odc-by", license_title="")
    portal.package("yosan", "当初予算の概要", kakogawa, [
        {"name": "予算書", "format": "PDF", "url": "{base}/dataset/files/yosan.pdf"}])
    portal.package("shisetsu", "公共施設一覧", kakogawa, [
        {"name": "施設", "format": "CSV", "url": "{base}/dataset/files/missing.csv"}])
    portal.package("himeji-events", "イベント一覧", {"name": "himeji-city", "title": "姫路市"}, [
        {"name": "イベント", "format": "CSV",
         "url": portal.add_csv("events.csv", layout_csv("イベント一覧", "282014", "姫路市").encode())}])
    return portal, await portal.start()


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _mtime(path: Path) -> int:
    return path.stat().st_mtime_ns


async def _import(h: MeshHarness, url: str, *args: str) -> dict:
    _, out, err = await h.cli("connector", "dataset", "import", url, "--data-dir",
                              str(h.root / "kakogawa"), "--json", *args)
    assert out.strip(), err
    return json.loads(out)


async def test_harvest_recorded_portal(harness: MeshHarness, tmp_path: Path) -> None:
    h = harness
    await setup_catalog_mesh(h, publish=False)
    portal, runner = await _portal()
    try:
        # paging: 2 packages a page through the harvest function itself
        state = NodeState.load(h.root / "kakogawa")
        items = await harvest_items(portal.base, tmp_path, state, data_dir=h.root / "kakogawa",
                                    rows=2)
        assert [s for _, s in portal.searches] == [0, 2, 4]
        assert sorted(i.doc["id"] for i in items if isinstance(i, Item)) == \
            ["282014-himeji-events", "282103-koshu-toilet", "283819-aed"]

        report = await _import(h, portal.base)
        items = {i["name"]: i for i in report["items"]}
        assert report["counts"] == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 2,
                                    "failed": 1}
        assert items["yosan"]["status"] == "skipped"                   # no CSV resource
        assert items["himeji-events"]["status"] == "skipped"           # not this node's
        assert "HTTP 404" in items["shisetsu"]["reason"]

        toilet = await http_json(f"{h.http_url}/api/v1/datasets/282103-koshu-toilet")
        assert toilet["publisher"] == "282103"          # the CSV's code: the org name is no id
        assert toilet["title"]["ja"] == "公衆トイレ一覧"
        assert toilet["description"]["ja"].startswith("市内の公衆トイレの位置と設備の一覧です。")
        assert "加古川市" in toilet["description"]["ja"]     # the organisation, named
        assert {"トイレ", "バリアフリー"} <= set(toilet["keywords"])
        assert toilet["license"] == "クリエイティブ・コモンズ 表示 4.0 国際"
        assert toilet["standard_type"] == "公衆トイレ一覧"
        aed = await http_json(f"{h.http_url}/api/v1/datasets/283819-aed")
        assert aed["publisher"] == "283819" and aed["license"] == "odc-by"   # org = participant
        assert "稲美町" not in aed["description"]["ja"]

        # downloaded under the publisher's folder; the csv source points at the file
        stored = json.loads((h.root / "kakogawa" / "publishers" / "283819" / "datasets" /
                             "283819-aed.json").read_text())
        path = Path(stored["source"]["path"])
        assert path == h.root / "kakogawa" / "publishers" / "283819" / "harvested" / "283819-aed.csv"
        assert _read(path) == portal.files["aed.csv"]
        assert not (h.root / "kakogawa" / "publishers" / "282014").exists()
        mtime = _mtime(path)

        # re-harvest: unchanged, the file left alone; a changed resource → one new version
        again = await _import(h, portal.base)
        assert again["counts"]["unchanged"] == 2 and again["counts"]["added"] == 0
        assert _mtime(path) == mtime
        portal.files["aed.csv"] = layout_csv("AED設置箇所一覧", "283819", "稲美町", rows=5).encode()
        changed = await _import(h, portal.base)
        assert {i["name"]: i["status"] for i in changed["items"]}["aed"] == "updated"
        assert (await http_json(f"{h.http_url}/api/v1/datasets/283819-aed"))["version"] == 2
        assert (await http_json(f"{h.http_url}/api/v1/datasets/282103-koshu-toilet"))["version"] == 1
        assert _read(path) == portal.files["aed.csv"]

        # dry run: the change is reported, nothing downloaded into the data dir or published
        portal.files["aed.csv"] = layout_csv("AED設置箇所一覧", "283819", "稲美町", rows=7).encode()
        dry = await _import(h, portal.base, "--dry-run")
        assert {i["name"]: i["status"] for i in dry["items"]}["aed"] == "updated"
        assert _read(path) != portal.files["aed.csv"]
        assert not (h.root / "kakogawa" / "import-staging").exists() or \
            not any((h.root / "kakogawa" / "import-staging").iterdir())
        assert (await http_json(f"{h.http_url}/api/v1/datasets/283819-aed"))["version"] == 2
    finally:
        await runner.cleanup()
