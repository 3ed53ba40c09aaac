"""A dataset's declared standard layout and edition, end to end through a real registry: published
with ``connector dataset add``, stored, faceted by layout name, shown on the dataset page and in
search results with its edition, in DCAT (``dct:conformsTo``) and the CKAN package (an extra), and
its source validated with ``connector dataset check --id`` (issue 15 §1–3)."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import aiohttp
import pytest
import yaml

from mesh import standards

from .catalog_fixtures import dataset, publish_direct, setup_catalog_mesh
from .conftest import MeshHarness, http_json, run_cli
from .layout_fixtures import PLACEHOLDER, conforming_csv

pytestmark = pytest.mark.integration
BROWSER = {"Accept": "text/html", "Accept-Language": "ja"}
JICHITAI = "自治体標準オープンデータセット"
TOILETS = standards.get_standard("公衆トイレ一覧", JICHITAI)


async def get_text(h: MeshHarness, path: str, headers: dict[str, str] | None = None) -> str:
    async with aiohttp.ClientSession() as s, s.get(f"{h.http_url}{path}", headers=headers) as r:
        assert r.status == 200, path
        return await r.text()


async def test_declared_layout_and_edition_through_the_catalog(harness: MeshHarness) -> None:
    h = harness
    await setup_catalog_mesh(h, publish=False)
    await publish_direct(h, "himeji", dataset("himeji-aed"))       # standard_type, as before
    # a municipal file in the 自治体標準 layout, with 不明 where a count is unknown
    lines = conforming_csv(TOILETS).split("\r\n")
    cells = lines[1].split(",")
    cells[TOILETS.column_names.index("男性トイレ総数")] = "不明"
    lines[1] = ",".join(cells)
    (h.root / "toilets.csv").write_text("\r\n".join(lines), encoding="utf-8-sig")
    doc = {"id": "himeji-toilets", "title": {"ja": "姫路市 公衆トイレ一覧"},
           "description": {"ja": "市内の公衆トイレ"}, "themes": ["観光"], "license": "CC-BY-4.0",
           "standard": {"layout": "公衆トイレ一覧", "edition": "自治体標準",
                        "missingValues": {"*": [PLACEHOLDER], "男性トイレ総数": ["不明"]}},
           "source": {"adapter": "csv", "path": "toilets.csv"}}
    (h.root / "toilets.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    node = str(h.root / "himeji")
    rc, out, err = await h.cli("connector", "dataset", "add", "--data-dir", node,
                               "--file", str(h.root / "toilets.yaml"))
    assert rc == 0 and "version 1" in out, err

    # stored and served as {layout, edition id, missingValues}; the schema is that edition's
    shown = await http_json(f"{h.http_url}/api/v1/datasets/himeji-toilets")
    assert shown["standard"] == {"layout": "公衆トイレ一覧", "edition": JICHITAI,
                                 "missingValues": {"*": [PLACEHOLDER], "男性トイレ総数": ["不明"]}}
    assert [f["name"] for f in shown["schema"]["fields"]] == TOILETS.column_names
    assert shown["source_check"]["status"] == "passed"

    # the facet keeps the layout name
    query = urlencode({"standard_type": "公衆トイレ一覧"})
    found = await http_json(f"{h.http_url}/api/v1/datasets?{query}")
    assert [r["id"] for r in found["results"]] == ["himeji-toilets"]
    everything = await http_json(f"{h.http_url}/api/v1/datasets")
    assert {f["value"]: f["count"] for f in everything["facets"]["standard_type"]} == \
        {"AED設置箇所一覧": 1, "公衆トイレ一覧": 1}

    # the dataset page and the search results name the layout and its edition
    page = await get_text(h, "/datasets/himeji-toilets", BROWSER)
    assert "公衆トイレ一覧（自治体標準オープンデータセット）" in page
    assert 'href="/?standard_type=%E5%85%AC%E8%A1%86' in page
    page = await get_text(h, "/datasets/himeji-aed", BROWSER)
    assert "AED設置箇所一覧（エリアデータ標準データモデル 2026年版）" in page
    english = await get_text(h, "/datasets/himeji-toilets", {"Accept": "text/html",
                                                             "Accept-Language": "en"})
    assert "公衆トイレ一覧 (Standard municipal open datasets)" in english
    results = await get_text(h, "/?q=トイレ", BROWSER)
    assert "公衆トイレ一覧（自治体標準オープンデータセット）" in results
    # the consumer CLI prints the edition (and the declared placeholders) too
    rc, out, err = await run_cli("catalog", "show", "himeji-toilets", "--registry", h.http_url,
                               env={"COLUMNS": "250"})
    assert rc == 0 and f"公衆トイレ一覧（{JICHITAI}）" in out and "男性トイレ総数: 不明" in out, err
    rc, out, err = await run_cli("catalog", "show", "himeji-aed", "--registry", h.http_url,
                               env={"COLUMNS": "250"})
    assert rc == 0 and f"AED設置箇所一覧（{standards.DEFAULT_EDITION}）" in out, err

    # DCAT: dct:conformsTo names the layout and the edition
    catalog = json.loads(await get_text(h, "/catalog.jsonld"))
    nodes = {d["dct:identifier"]: d for d in catalog["dcat:dataset"]}
    conforms = nodes["himeji-toilets"]["dct:conformsTo"]
    assert conforms["@type"] == "dct:Standard" and conforms["owl:versionInfo"] == JICHITAI
    assert {"@value": "公衆トイレ一覧", "@language": "ja"} in conforms["dct:title"]
    assert conforms["dct:isPartOf"]["dct:identifier"] == JICHITAI
    assert nodes["himeji-aed"]["dct:conformsTo"]["owl:versionInfo"] == standards.DEFAULT_EDITION

    # CKAN: the layout in standard_type, the edition in standard_edition
    package = await http_json(f"{h.http_url}/api/3/action/package_show?id=himeji-toilets")
    extras = {e["key"]: e["value"] for e in package["result"]["extras"]}
    assert (extras["standard_type"], extras["standard_edition"]) == ("公衆トイレ一覧", JICHITAI)

    # the registered source conforms to its declaration, with the declared placeholders
    rc, out, err = await h.cli("connector", "dataset", "check", "--data-dir", node,
                               "--id", "himeji-toilets")
    assert rc == 0 and "適合しています / conforms" in out, out + err
    # a bad declaration is refused with its key path, before anything is published
    doc["standard"] = {"layout": "公衆トイレ一覧", "edition": "1999"}
    (h.root / "bad.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    rc, out, err = await h.cli("connector", "dataset", "add", "--data-dir", node,
                               "--file", str(h.root / "bad.yaml"))
    assert rc == 2 and "standard.edition: 標準の版「1999」はありません" in err
