"""The data map (registry/datamap/): services registered through a connector over mTLS, the
guidebook's two tables from a small mesh of real processes (datasets published, agreements
signed by both nodes and notarised, usage reported by providers, all through the registry's RPCs),
the xlsx and CSV files, the JSON API's doors and the console page."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path

import aiohttp
import pytest
from openpyxl import load_workbook

from mesh.agreements import Agreement, SignedAgreement
from mesh.datasets import canonical_json
from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2
from mesh.usage_reports import SignedUsageReport
from registry.datamap.build import attribute
from registry.datamap.services import SERVICE_ID, Service, check_service_id

from .browser.conftest import add_operator
from .catalog_fixtures import setup_catalog_mesh
from .conftest import MeshHarness, bearer
from .test_console_pages import HTML, Browser

# The guidebook 第3.0版's headers, written out here and not imported, so the test checks them.
SERVICE_HEADERS = ["サービス名", "サービスへの取込データ", "サービスでの取得データ（内部利用のみ）",
                   "サービスでの取得データ（外部利用可）", "提供頻度", "提供方法", "提供先"]
ASSET_HEADERS = ["データアセット名", "データの所管元", "データの所在", "提供頻度", "提供方法",
                 "提供先サービス"]
SHEETS = ["サービス側データマップ", "データアセット側データマップ"]

KOSODATE = {"id": "kosodate-app", "name": {"ja": "子育て応援アプリ", "en": "Childcare app"},
            "components": [{"id": "notify", "name": "通知"}], "purposes": ["子育て支援"],
            "intake": ["kakogawa-childcare"],
            "acquired": [{"name": "予約履歴", "use": "internal"},
                         {"name": "イベント参加状況", "use": "external", "dataset": "himeji-events"}]}
KANKO = {"id": "kanko-navi", "name": "観光ナビ", "purposes": ["観光"]}
INAMI = {"id": "tameike-watch", "operator": "283819", "name": "ため池見守り",
         "intake": ["inami-ponds"], "acquired": [{"name": "水位の記録", "use": "internal"}]}


def test_service_ids_follow_the_consent_rule():
    from connector.consent.store import LOCAL_ID

    assert SERVICE_ID.pattern == LOCAL_ID.pattern
    assert check_service_id("kosodate-app/v2:notify@x") == "kosodate-app/v2:notify@x"
    for bad in ("", "-lead", "a b", "ア", "x" * 129, None, 5):
        with pytest.raises(Exception, match="invalid service id"):
            check_service_id(bad)


def test_attribution_rules():
    a = Service("282014", "a", "A", purposes=("観光",), intake=("d1",))
    b = Service("282014", "b", "B", purposes=("防災",), intake=("d1",))
    c = Service("283819", "c", "C", purposes=("防災",))             # a tenant of 282103
    assert attribute("282014", "d1", "観光", [a, b], {}) == (a, "purpose+intake")
    assert attribute("282014", "d1", "教育", [a, b], {}) == (None, "ambiguous")
    assert attribute("282014", "d2", "防災", [a, b], {}) == (b, "purpose")
    assert attribute("282014", "d1", None, [a], {}) == (a, "intake")
    assert attribute("282103", "d9", "防災", [a, b, c], {"283819": "282103"}) == (c, "purpose")
    assert attribute("270008", "d1", "観光", [a, b], {}) == (None, "none")


async def _service_cli(h: MeshHarness, node: str, *args: str) -> tuple[int, str, str]:
    return await h.cli("connector", "service", *args, "--data-dir", str(h.root / node))


async def _add(h: MeshHarness, node: str, doc: dict) -> tuple[int, str, str]:
    path = h.root / f"service-{node}-{doc['id'].replace('/', '_')}.json"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return await _service_cli(h, node, "add", "--file", str(path))


async def _agree(h: MeshHarness, dataset: str, provider: str, consumer: str, purpose: str) -> str:
    """An agreement signed by both nodes' own keys, notarised by the consumer's node."""
    uri = {n: f"urn:areamesh:org:{pid}:node:main" for n, pid in
           (("himeji", "282014"), ("kakogawa", "282103"), ("osaka", "270008"))}
    a = Agreement.new(dataset_id=dataset, offer_id="open-use", policy={"permissions": [
        {"action": "use"}]}, provider=uri[provider], consumer=uri[consumer], purpose=purpose)
    signed = SignedAgreement(a, {})
    signed = signed.with_signature("provider", NodeKeyStore(h.root / provider / "tls"))
    signed = signed.with_signature("consumer", NodeKeyStore(h.root / consumer / "tls"))
    stub = h.registry_stub(h.node_credentials(consumer))
    await stub.NotariseAgreement(registry_pb2.NotariseAgreementRequest(
        signed_agreement_json=canonical_json(signed.to_json())), timeout=10)
    return a.id


async def _report(h: MeshHarness, provider: str, agreement: str, dataset: str, records: list[int]):
    """The provider's signed usage report of one transfer per count in ``records``."""
    rows = [{"transfer_id": f"{agreement[:8]}-{i}", "agreement_id": agreement, "dataset_id": dataset,
             "records": n, "bytes": n * 100, "batches": 1, "started_at": "2026-11-10T00:00:00Z",
             "ended_at": "2026-11-10T00:01:00Z", "incremental": False}
            for i, n in enumerate(records)]
    signed = SignedUsageReport.sign(NodeKeyStore(h.root / provider / "tls"), seq=next(_SEQ),
                                    role="provider", records=rows)
    stub = h.registry_stub(h.node_credentials(provider))
    reply = await stub.ReportUsage(registry_pb2.ReportUsageRequest(
        signed_report_json=signed.to_bytes()), timeout=10)
    assert reply.accepted == len(records), reply


_SEQ = itertools.count(1)


@pytest.fixture
async def mesh(harness: MeshHarness) -> MeshHarness:
    h = harness
    await setup_catalog_mesh(h, certify=("282014", "282103", "270008"))
    for node, doc in (("himeji", KOSODATE), ("himeji", KANKO), ("kakogawa", INAMI)):
        rc, out, err = await _add(h, node, doc)
        assert rc == 0, err
        assert "registered service" in out
    childcare = await _agree(h, "kakogawa-childcare", "kakogawa", "himeji", "子育て支援")
    population = await _agree(h, "osaka-population", "osaka", "himeji", "観光")
    aed = await _agree(h, "himeji-aed", "himeji", "osaka", "防災")
    await _report(h, "kakogawa", childcare, "kakogawa-childcare", [120, 30])
    await _report(h, "osaka", population, "osaka-population", [5000])
    await _report(h, "himeji", aed, "himeji-aed", [7])
    return h


async def test_registration_is_refused_for_another_participant_and_bad_ids(mesh: MeshHarness):
    h = mesh
    rc, _, err = await _add(h, "himeji", {**KANKO, "operator": "282103"})
    assert rc != 0 and "282103" in err and "service_operator_not_allowed" in err
    rc, _, err = await _add(h, "himeji", {**KANKO, "id": "-bad id"})
    assert rc != 0 and "invalid_service_id" in err
    rc, _, err = await _add(h, "himeji", {**KANKO, "components": [{"id": "ア", "name": "x"}]})
    assert rc != 0 and "invalid_component_id" in err
    rc, _, err = await _add(h, "himeji", {**KANKO, "acquired": [{"name": "x", "use": "public"}]})
    assert rc != 0 and "invalid_service" in err
    rc, _, err = await _service_cli(h, "himeji", "remove", "--id", "tameike-watch",
                                    "--operator", "283819")
    assert rc != 0 and "service_operator_not_allowed" in err
    # each connector lists its own (and its tenants'), the refused ones changed nothing
    rc, out, err = await _service_cli(h, "himeji", "list", "--json")
    assert rc == 0, err
    assert [(s["operator"], s["id"]) for s in json.loads(out)] == [
        ("282014", "kanko-navi"), ("282014", "kosodate-app")]
    assert json.loads(out)[0]["name"] == {"ja": "観光ナビ", "en": ""}
    rc, out, _ = await _service_cli(h, "kakogawa", "list")
    assert out.split("\t")[:3] == ["283819", "tameike-watch", "ため池見守り"]
    rc, _, err = await _service_cli(h, "himeji", "remove", "--id", "kanko-navi")
    assert rc == 0, err
    rc, out, _ = await _service_cli(h, "himeji", "list", "--json")
    assert [s["id"] for s in json.loads(out)] == ["kosodate-app"]
    rc, _, err = await _service_cli(h, "himeji", "remove", "--id", "kanko-navi")
    assert rc != 0 and "service_unknown" in err


def _rows(sheet) -> list[list[str]]:
    return [[c if c is not None else "" for c in row] for row in sheet.iter_rows(values_only=True)]


async def test_export_xlsx_and_csv_have_the_guidebook_headers_and_the_flows(mesh: MeshHarness,
                                                                           tmp_path: Path):
    h = mesh
    out = tmp_path / "map.xlsx"
    rc, stdout, err = await h.cli("registry", "datamap", "export", "--data-dir",
                                  str(h.registry_dir), "--format", "xlsx", "--out", str(out))
    assert rc == 0, err
    assert "services 3" in stdout and "flows 3" in stdout
    wb = load_workbook(out)
    assert wb.sheetnames == SHEETS
    service, asset = _rows(wb[SHEETS[0]]), _rows(wb[SHEETS[1]])
    assert service[0] == SERVICE_HEADERS and asset[0] == ASSET_HEADERS
    by_name = {r[0]: r for r in service[1:]}
    assert set(by_name) == {"子育て応援アプリ（姫路市）", "観光ナビ（姫路市）", "ため池見守り（稲美町）"}
    kosodate = by_name["子育て応援アプリ（姫路市）"]
    assert kosodate[1] == "加古川市 子育て施設一覧"
    assert kosodate[2] == "予約履歴"
    assert kosodate[3] == "イベント参加状況（姫路市 イベント一覧）"
    assert kosodate[4] == "毎週"                        # himeji-events' update frequency
    assert kosodate[5].startswith("オープン（誰でも利用可）")
    assert kosodate[6] == ""                            # nobody received himeji-events yet
    # kanko-navi takes nothing in by declaration; osaka-population reaches it by purpose 観光
    assert by_name["観光ナビ（姫路市）"][1] == "大阪府 市区町村別推計人口"
    assert by_name["ため池見守り（稲美町）"][1] == "稲美町 ため池一覧"
    assets = {r[0]: r for r in asset[1:]}
    assert len(asset) - 1 == 14                         # every published dataset
    assert assets["加古川市 子育て施設一覧"][5] == "子育て応援アプリ（姫路市）：150件"
    assert assets["大阪府 市区町村別推計人口"][5] == "観光ナビ（姫路市）：5,000件"
    assert assets["姫路市 AED設置箇所一覧"][5] == "大阪府（サービス未特定）：7件"
    assert assets["姫路市 AED設置箇所一覧"][2] == \
        "姫路市のコネクタ（main）・提供元システムに保持（外部管理）"
    assert assets["稲美町 ため池一覧"][2].startswith("加古川市のコネクタ（main、共同利用）")
    assert assets["大阪府 医療機関一覧"][4].startswith("利用契約に基づく提供")
    assert assets["大阪府 大気汚染常時監視 測定結果"][3] == "毎時"

    # CSV: one file per table, UTF-8 with BOM; --table writes one
    rc, _, err = await h.cli("registry", "datamap", "export", "--data-dir", str(h.registry_dir),
                             "--format", "csv", "--out", str(tmp_path / "map.csv"))
    assert rc == 0, err
    for name, headers in (("map-service.csv", SERVICE_HEADERS), ("map-asset.csv", ASSET_HEADERS)):
        raw = (tmp_path / name).read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert rows[0] == headers
    rows = list(csv.reader(io.StringIO((tmp_path / "map-asset.csv").read_bytes()
                                       .decode("utf-8-sig"), newline="")))
    childcare = next(r for r in rows if r[0] == "加古川市 子育て施設一覧")
    assert childcare[5] == "子育て応援アプリ（姫路市）：150件"
    rc, _, err = await h.cli("registry", "datamap", "export", "--data-dir", str(h.registry_dir),
                             "--format", "csv", "--table", "service", "--out",
                             str(tmp_path / "s.csv"))
    assert rc == 0 and (tmp_path / "s.csv").exists() and not (tmp_path / "s-service.csv").exists()
    # a period without transfers: the same rows, no records
    rc, _, err = await h.cli("registry", "datamap", "export", "--data-dir", str(h.registry_dir),
                             "--format", "xlsx", "--out", str(out), "--period", "2026-10")
    assert rc == 0, err
    asset = _rows(load_workbook(out)[SHEETS[1]])
    assert next(r for r in asset if r[0] == "加古川市 子育て施設一覧")[5] == "子育て応援アプリ（姫路市）：0件"


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, await r.json()


async def test_api_doors_and_a_participant_sees_only_its_own_figures(mesh: MeshHarness):
    h = mesh
    status, body = await _get(h.http_url + "/api/v1/datamap")
    assert status == 401 and "flows" not in body
    status, body = await _get(h.http_url + "/api/v1/datamap", await h.operator_headers("auditor"))
    assert status == 200
    assert body["service_side"]["headers"] == SERVICE_HEADERS
    assert body["asset_side"]["headers"] == ASSET_HEADERS
    flows = {f["dataset"]: f for f in body["flows"]}
    assert flows["kakogawa-childcare"]["records"] == 150
    assert flows["kakogawa-childcare"]["service"] == {"operator": "282014", "id": "kosodate-app"}
    assert flows["kakogawa-childcare"]["attributed_by"] == "purpose+intake"
    assert flows["osaka-population"]["purpose"] == "観光"
    assert flows["himeji-aed"]["service"] is None
    rc, key, err = await h.cli("registry", "participant", "key", "create", "--data-dir",
                               str(h.registry_dir), "--id", "282103")
    assert rc == 0, err
    status, body = await _get(h.http_url + "/api/v1/datamap", bearer(key.strip()))
    assert status == 200
    flows = {f["dataset"]: f for f in body["flows"]}
    assert set(flows) == {"kakogawa-childcare", "osaka-population", "himeji-aed"}
    assert flows["kakogawa-childcare"]["records"] == 150          # its own flow
    assert flows["osaka-population"]["records"] is None           # others' figures: operator only
    cells = {r[0]: r for r in body["asset_side"]["rows"]}
    assert cells["大阪府 市区町村別推計人口"][5] == "観光ナビ（姫路市）"
    assert "5,000" not in json.dumps(body, ensure_ascii=False)
    status, _ = await _get(h.http_url + "/api/v1/datamap?period=2026-13",
                           await h.operator_headers("auditor"))
    assert status == 400


async def test_console_page_tables_graph_and_downloads(mesh: MeshHarness):
    h = mesh
    await add_operator(h, "yamada", "auditor")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        b = Browser(h.http_url, s)
        await b.sign_in("yamada")
        status, page = await b.get("/admin/datamap")
        assert status == 200, page
        assert not re.search(r"[>\s\"]console\.[a-z_]+\.[a-z_.]+", page)
        for header in SERVICE_HEADERS + ASSET_HEADERS:
            assert f'<th scope="col">{header}</th>' in page
        assert "子育て応援アプリ（姫路市）：150件" in page
        assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in page
        assert '<title id="dm-title">' in page and '<desc id="dm-desc">' in page
        widths = [float(w) for w in re.findall(r'class="edge flow" stroke-width="([0-9.]+)"', page)]
        assert len(widths) == 3 and max(widths) == 14.0 and min(widths) < 6
        assert 'aria-current="page">データマップ' in page
        async with s.get(h.http_url + "/admin/datamap/download?format=xlsx", headers=HTML) as r:
            assert r.status == 200
            assert "attachment" in r.headers["Content-Disposition"]
            wb = load_workbook(io.BytesIO(await r.read()))
        assert wb.sheetnames == SHEETS
        assert _rows(wb[SHEETS[0]])[0] == SERVICE_HEADERS
        async with s.get(h.http_url + "/admin/datamap/download?format=csv&table=asset",
                         headers=HTML) as r:
            assert r.status == 200
            raw = await r.read()
        assert raw.startswith(b"\xef\xbb\xbf") and "データアセット名" in raw.decode("utf-8-sig")
        status, page = await b.get("/admin/datamap?period=2026-10")
        assert status == 200 and "子育て応援アプリ（姫路市）：0件" in page
        status, page = await b.get("/admin/datamap?lang=en")
        assert status == 200 and "<h1>Data map</h1>" in page and "Service-side data map" in page
        assert not re.search(r"[>\s\"]console\.[a-z_]+\.[a-z_.]+", page)
    async with aiohttp.ClientSession() as s, s.get(h.http_url + "/admin/datamap/download",
                                                   allow_redirects=False) as r:
        assert r.status in (302, 303, 401)
