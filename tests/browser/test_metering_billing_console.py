"""The metering page (/admin/metering) and cost allocation (/admin/billing) in Chromium.

A small mesh of real processes: three nodes enrolled, agreements signed by both nodes and
notarised, providers' and consumers' signed usage reports handed in over mTLS — one transfer
agreeing, one whose counts differ, one the consumer never reported. An admin opens the metering
page (the flagged rows shown first, marked), runs period 2026-11 by uploading
examples/billing/demo-2026-11.yaml, opens the run's summary (uPlot chart, its table) and one
participant's statement, and downloads the xlsx. axe-core runs on each page type at desktop width
and at 360 px, where nothing may be wider than the screen; screenshots go to build/screenshots/.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mesh.keystore import NodeKeyStore
from mesh.proto.areamesh.v1 import registry_pb2
from mesh.usage_reports import SignedUsageReport

from ..catalog_fixtures import setup_catalog_mesh
from ..conftest import MeshHarness
from ..test_datamap import _agree, _report
from .conftest import add_operator, check_axe, no_horizontal_scroll, screenshot, sign_in
from .test_operator_console import script_errors

pytestmark = pytest.mark.integration

RULES = Path(__file__).parents[2] / "examples" / "billing" / "demo-2026-11.yaml"
_SEQ = itertools.count(5001)


async def _consumer_report(h: MeshHarness, consumer: str, agreement: str, dataset: str,
                           records: dict[int, int]) -> None:
    """The consumer's signed report: transfer number → records it says it received."""
    rows = [{"transfer_id": f"{agreement[:8]}-{i}", "agreement_id": agreement, "dataset_id": dataset,
             "records": n, "bytes": n * 100, "batches": 1, "started_at": "2026-11-10T00:00:00Z",
             "ended_at": "2026-11-10T00:01:00Z", "incremental": False}
            for i, n in records.items()]
    signed = SignedUsageReport.sign(NodeKeyStore(h.root / consumer / "tls"), seq=next(_SEQ),
                                    role="consumer", records=rows)
    reply = await h.registry_stub(h.node_credentials(consumer)).ReportUsage(
        registry_pb2.ReportUsageRequest(signed_report_json=signed.to_bytes()), timeout=10)
    assert reply.accepted == len(rows), reply


@pytest.fixture
async def metered(harness: MeshHarness) -> MeshHarness:
    h = harness
    await setup_catalog_mesh(h, certify=("282014", "282103", "270008"))
    childcare = await _agree(h, "kakogawa-childcare", "kakogawa", "himeji", "子育て支援")
    population = await _agree(h, "osaka-population", "osaka", "himeji", "観光")
    await _report(h, "kakogawa", childcare, "kakogawa-childcare", [120, 30])
    await _report(h, "osaka", population, "osaka-population", [5000])
    # 姫路市 agrees on the first childcare transfer, says 4,900 for the population one and
    # never reports the second childcare transfer
    await _consumer_report(h, "himeji", childcare, "kakogawa-childcare", {0: 120})
    await _consumer_report(h, "himeji", population, "osaka-population", {0: 4900})
    h.transfers = {"agree": f"{childcare[:8]}-0", "missing": f"{childcare[:8]}-1",
                   "differ": f"{population[:8]}-0"}
    return h


async def test_metering_and_billing_pages(metered: MeshHarness, page, phone, tmp_path):
    h = metered
    base = h.http_url
    await add_operator(h, "yamada", "admin")
    await sign_in(page, base, "yamada")

    # metering: figures per organisation, the cross-check with the flagged rows first
    await page.get_by_role("link", name="計量・突合", exact=True).click()
    await page.wait_for_url(f"{base}/admin/metering")
    await page.fill("#f-period", "2026-11")
    await page.fill("#f-grace", "0")
    await page.get_by_role("button", name="表示", exact=True).click()
    await page.wait_for_url("**/admin/metering?period=2026-11&grace_minutes=0")
    figures = page.get_by_role("table", name="参加者ごとの利用状況（2026-11）")
    himeji = figures.locator("tr", has=page.locator("th", has_text="282014"))
    assert "5,150" in await himeji.inner_text()          # records received by 姫路市 (provider side)
    check = page.get_by_role("table", name="提供側と利用側の報告の突合")
    rows = check.locator("tbody tr")
    assert await rows.count() == 3
    *flagged_rows, last = await rows.all_inner_texts()
    missing, differ = sorted(flagged_rows, key=lambda r: h.transfers["missing"] not in r)
    assert h.transfers["missing"] in missing and "利用側の報告なし" in missing
    assert h.transfers["differ"] in differ and "件数が不一致" in differ
    assert "5,000" in differ and "4,900" in differ
    assert h.transfers["agree"] in last and "一致" in last
    flagged = check.locator("tbody tr.flagged")
    assert await flagged.count() == 2
    assert sorted(await flagged.locator("strong").all_inner_texts()) == ["件数が不一致", "利用側の報告なし"]
    card = page.locator(".stats > li", has=page.get_by_role("heading", name="不一致・未着"))
    assert await card.locator(".big").inner_text() == "2"
    await check_axe(page, "metering")
    await screenshot(page, "console-metering")

    # billing: run 2026-11 from the demo's rule file
    await page.get_by_role("link", name="費用按分", exact=True).click()
    await page.wait_for_url(f"{base}/admin/billing")
    assert "まだ実行された期間はありません" in await page.locator("main table").inner_text()
    await check_axe(page, "billing runs with the upload form")
    await page.get_by_label("期間（例: 2026-11）").fill("2026-11")
    await page.get_by_label("ルールファイル（YAML）").set_input_files(str(RULES))
    await page.get_by_role("button", name="実行", exact=True).click()
    await page.wait_for_url(f"{base}/admin/billing/2026-11?done=billing_run")
    assert "費用按分を実行し" in await page.locator(".alert.ok").inner_text()
    await page.locator("#billing-chart canvas").wait_for()           # uPlot drew the chart
    caption = "参加団体ごとの固定費・共用費と変動費（同じ数値を下の表に示します）"
    chart = page.get_by_role("figure", name=caption)    # the chart's text alternative
    assert await chart.count() == 1
    summary = page.get_by_role("table", name="参加団体ごとの請求額（2026-11）")
    assert await summary.locator("tbody tr").count() == 3
    assert "1,950,000" in await summary.locator("tfoot").inner_text()     # 300,000+1,200,000+450,000
    assert "JST (yamada)" in await page.locator(".run-facts").inner_text()
    await check_axe(page, "billing summary")
    await screenshot(page, "console-billing")

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Excel形式（xlsx）でダウンロード").click()
    download = await info.value
    assert download.suggested_filename == "billing-2026-11.xlsx"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    book = await asyncio.to_thread(load_workbook, saved)
    assert book.sheetnames == ["集計", "282014", "282103", "283819"]

    await summary.get_by_role("link", name="282014").click()
    await page.wait_for_url(f"{base}/admin/billing/2026-11/282014")
    assert "姫路市 の明細（2026-11）" in await page.get_by_role("heading", level=1).inner_text()
    lines = page.get_by_role("table", name="費目ごとの按分額")
    assert await lines.locator("tbody tr").count() == 3
    assert "データ流通量に応じた費用" in await lines.inner_text()
    frame = page.locator(".table-wrap", has=lines)       # ten columns fit a desktop screen
    assert await frame.evaluate("e => e.scrollWidth <= e.clientWidth"), "the statement scrolls"
    await check_axe(page, "billing statement")
    await screenshot(page, "console-billing-statement")
    await _nav_fits(page, "desktop")
    assert not script_errors(page), page.console_errors

    # the same pages at 360 px
    await sign_in(phone, base, "yamada")
    for path in ("/admin/metering?period=2026-11&grace_minutes=0", "/admin/billing",
                 "/admin/billing/2026-11", "/admin/billing/2026-11/282014"):
        await phone.goto(base + path)
        if path == "/admin/billing/2026-11":
            await phone.locator("#billing-chart canvas").wait_for()
            box = await phone.locator("#billing-chart canvas").bounding_box()
            assert box and box["x"] + box["width"] <= 360, box
        await no_horizontal_scroll(phone, path)
        await _nav_fits(phone, path)
        await check_axe(phone, f"{path} at 360 px")
    await screenshot(phone, "console-billing-statement-360")
    await phone.goto(base + "/admin/metering?period=2026-11&grace_minutes=0")
    await screenshot(phone, "console-metering-360")


async def _nav_fits(page, what: str) -> None:
    """Every item of the console menu is inside the screen and no item breaks over two lines."""
    boxes = await page.evaluate("""() => [...document.querySelectorAll('.console-nav a')].map(a => {
        const r = a.getBoundingClientRect();
        return {text: a.textContent, right: r.right, left: r.left, lines: a.getClientRects().length};
    })""")
    width = await page.evaluate("window.innerWidth")
    assert len(boxes) == 13, boxes       # console MENU (registry/web/console/common.py)
    for b in boxes:
        assert b["left"] >= 0 and b["right"] <= width, (what, b)
        assert b["lines"] == 1, (what, b)
