"""The connector console in a real browser, with two real connectors and a FINALIZED agreement
(made with ``areamesh connector contract request``): the overview, a fetch started from the
form whose progress the page's script follows to its end, the transfers list, and the node
page with the provider pinged. axe-core on every page type; screenshots; 360 px."""

from __future__ import annotations

import re

import pytest

from ..conftest import MeshHarness, wait_for
from ..test_connector_console_accounts import _account
from ..transfer_fixtures import DATASET_ID, agree, ndjson_rows, setup_transfer_mesh, source_rows
from .conftest import check_axe, no_horizontal_scroll, screenshot, sign_in

ROWS = 200_000     # a stream of a few seconds: the page is loaded before it ends


@pytest.mark.timeout(300)   # two connectors, a registry and a dozen CLI runs
async def test_console_fetch_with_progress_transfers_and_node(running: MeshHarness, page, phone):
    h = running
    _, source = await setup_transfer_mesh(h, rows=ROWS)
    consumer = await h.start_connector("kakogawa")
    base = f"http://127.0.0.1:{consumer.ready['http_port']}"
    agreement = await agree(h)
    await _account(h, "kakogawa", "tanaka", "admin")

    await sign_in(page, base, "tanaka")
    assert page.url == f"{base}/admin/"
    main = await page.inner_text("main")
    assert "加古川市" in main and "urn:areamesh:org:282103:node:main" in main
    assert "確定: 1" in main and "接続中" in main and "最新" in main
    await check_axe(page, "connector overview")
    await screenshot(page, "connector-overview")

    await page.goto(f"{base}/admin/transfers/new?agreement={agreement}")
    assert await page.get_by_label("利用契約").input_value() == agreement
    await page.get_by_label("保存するファイル名").fill("../population.ndjson")
    await page.get_by_role("button", name="取得を始める").click()
    await page.wait_for_load_state()
    error = page.locator("#f-file-error")
    assert "フォルダを含まない" in await error.inner_text()
    assert await page.get_by_label("保存するファイル名").get_attribute("aria-invalid") == "true"
    await check_axe(page, "fetch form with an error")

    await page.get_by_label("保存するファイル名").fill("population.ndjson")
    await page.get_by_label("形式").select_option("ndjson")
    await page.get_by_role("button", name="取得を始める").click()
    await page.wait_for_url(re.compile(r".*/admin/transfers/fetches/[0-9a-f]{16}$"))
    fetch_url = page.url
    # rendered while the fetch ran: what follows is the script's doing, not a reload
    assert await page.locator(".fetch").get_attribute("data-state") in ("starting", "running")
    await check_axe(page, "fetch progress page")
    # the script polls the progress JSON and updates the numbers without a reload
    await page.locator('.fetch [data-field="status"]', has_text="完了").wait_for(timeout=60_000)
    assert page.url == fetch_url
    expected = len(source_rows(source))
    assert expected == ROWS
    records = await page.locator('.fetch [data-field="records"]').inner_text()
    assert int(records.replace(",", "")) == expected
    assert await page.locator("progress").evaluate("p => p.value") == 1
    assert "取得が完了しました" in await page.locator("#live-status").inner_text()
    out = h.root / "kakogawa" / "downloads" / "population.ndjson"
    assert out.exists() and len(ndjson_rows(out)) == expected
    # CSP refusals or script errors (the form's 400 and a missing favicon are not)
    script_errors = [e for e in page.console_errors if "Failed to load resource" not in e]
    assert not script_errors, script_errors
    await screenshot(page, "connector-fetch")

    await page.goto(f"{base}/admin/transfers/")
    main = await page.inner_text("main")
    assert DATASET_ID in main and f"{expected:,}" in main
    await check_axe(page, "transfers list")
    await screenshot(page, "connector-transfers")

    await page.goto(f"{base}/admin/node/")
    peers = page.locator("table").first
    row = peers.locator("tr", has_text="大阪府")
    await row.wait_for()
    assert re.search(r"[0-9.]+ ミリ秒", await row.inner_text())
    assert "応答あり" in await row.inner_text()
    assert "sha256:" in await page.inner_text("main")
    await check_axe(page, "node status")
    await screenshot(page, "connector-node")

    await page.goto(f"{base}/admin/node/?lang=en")
    assert await page.inner_text("h1") == "Node status"
    assert "ms" in await page.locator("tr", has_text="大阪府").inner_text()
    await page.goto(f"{base}/admin/transfers/")
    assert await page.inner_text("h1") == "Transfers" and "Complete" in await page.inner_text("main")

    await sign_in(phone, base, "tanaka")
    await phone.goto(f"{base}/admin/")
    await no_horizontal_scroll(phone, "connector overview")
    await screenshot(phone, "connector-overview-phone")
    for path in ("/admin/transfers/", "/admin/node/", "/admin/transfers/new"):
        await phone.goto(base + path)
        await no_horizontal_scroll(phone, path)


async def test_fetch_progress_page_works_without_javascript(running: MeshHarness, browser):
    h = running
    await setup_transfer_mesh(h, rows=300)
    consumer = await h.start_connector("kakogawa")
    base = f"http://127.0.0.1:{consumer.ready['http_port']}"
    agreement = await agree(h)
    await _account(h, "kakogawa", "tanaka", "admin")
    context = await browser.new_context(java_script_enabled=False, locale="ja-JP")
    page = await context.new_page()
    try:
        await sign_in(page, base, "tanaka")
        await page.goto(f"{base}/admin/transfers/new?agreement={agreement}")
        await page.get_by_label("保存するファイル名").fill("small.csv")
        await page.get_by_label("形式").select_option("csv")
        await page.get_by_role("button", name="取得を始める").click()
        await page.wait_for_url(re.compile(r".*/admin/transfers/fetches/[0-9a-f]{16}$"))

        async def done() -> bool:       # the refresh link shows the figures of its moment
            await page.get_by_role("link", name="最新の状態に更新").click()
            await page.wait_for_load_state()
            return "完了" in await page.locator('.fetch [data-field="status"]').inner_text()

        await wait_for(done, timeout=30, interval=0.5, what="the fetch to be shown done")
        assert "300" in await page.locator('.fetch [data-field="records"]').inner_text()
        assert (h.root / "kakogawa" / "downloads" / "small.csv").exists()
    finally:
        await context.close()
