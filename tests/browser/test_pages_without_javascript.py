"""Issue 12, "every page readable without JavaScript": chromium with JavaScript turned off goes
through the catalog portal (search, narrow, sort, a dataset with its command), the developer
portal (a "try it" form reaches the live API) and the operator console (sign in, a refused and an
accepted participant, a join token, usage as a table). Copy buttons and charts, which need
scripts, are not offered; what they copy or draw is on the page as text. (axe-core, a script,
cannot run here: test_catalog_portal.py and test_operator_console.py run it on the same pages.)"""

from __future__ import annotations

import json

import pytest

from ..conftest import MeshHarness
from ..security.test_http_auth import record_usage
from .conftest import add_operator, screenshot, sign_in
from .test_catalog_portal import COMMAND


@pytest.fixture
async def nojs(browser):
    context = await browser.new_context(java_script_enabled=False, locale="ja-JP",
                                        timezone_id="Asia/Tokyo",
                                        viewport={"width": 1280, "height": 900})
    p = await context.new_page()
    try:
        yield p
    finally:
        await context.close()


async def result_ids(page) -> set[str]:
    hrefs = await page.locator(".results h3 a").evaluate_all(
        "els => els.map(e => e.getAttribute('href'))")
    return {h.removeprefix("/datasets/") for h in hrefs}


async def no_visible_copy_button(page, what: str) -> None:
    assert await page.locator("button.copy").count() > 0, what          # rendered, hidden
    assert await page.locator("button.copy:visible").count() == 0, what


async def test_catalog_and_developer_portal_without_javascript(catalog: MeshHarness, nojs):
    base, page = catalog.http_url, nojs
    await page.goto(base + "/")
    await page.get_by_label("キーワード").fill("防災")
    await page.get_by_role("button", name="検索").click()
    await page.wait_for_url("**/?q=*")
    assert await result_ids(page) == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    facet = page.locator("section[aria-labelledby=facet-publisher]")
    await facet.get_by_role("link", name="姫路市（282014）").click()
    await page.wait_for_url("**publisher=282014*")
    assert await result_ids(page) == {"himeji-aed", "himeji-evacuation"}
    await page.select_option("#sort", "title")                          # the form keeps the filter
    await page.get_by_role("button", name="検索").click()
    await page.wait_for_url("**sort=title*")
    assert "publisher=282014" in page.url
    assert await result_ids(page) == {"himeji-aed", "himeji-evacuation"}
    await page.get_by_role("link", name="姫路市 指定緊急避難場所一覧").click()
    await page.wait_for_url(base + "/datasets/himeji-evacuation")
    assert "すべての参加者が目的を問わず利用できます。" in await page.inner_text(".offer")
    assert (await page.inner_text("#cmd-open-use")).strip() == COMMAND     # there to select
    assert await page.locator("table tbody tr").count() == 26               # the schema
    await no_visible_copy_button(page, "dataset page")
    await screenshot(page, "nojs-dataset", full_page=False)
    for path, heading in (("/organizations/282103", "加古川市"), ("/themes/", "分野"),
                          ("/themes/disaster-prevention", "分野：防災")):
        await page.goto(base + path)
        assert (await page.inner_text("h1")).strip() == heading, path

    # the developer portal: the try-it form of GET /api/v1/datasets/{id} reaches the live API
    await page.goto(base + "/developers/")
    await no_visible_copy_button(page, "developer portal index")
    await page.goto(base + "/developers/api/registry")
    op = page.locator("#op-get-api-v1-datasets-id")
    await op.get_by_text("を試す").click()                                # <details> needs no script
    await op.get_by_label("id").fill("himeji-aed")
    await op.get_by_role("button", name="送信").click()
    await page.wait_for_url(base + "/api/v1/datasets/himeji-aed")
    assert json.loads(await page.inner_text("body"))["id"] == "himeji-aed"
    await page.goto(base + "/developers/grpc")
    assert "PeerService" in await page.inner_text("main")
    await page.goto(base + "/developers/adapters")
    assert "class Source(Protocol):" in await page.inner_text("article")


async def test_console_without_javascript(running: MeshHarness, nojs):
    h, page = running, nojs
    base = h.http_url
    await add_operator(h, "yamada", "admin")
    record_usage(h, [("270008", "282014", 125_000), ("282014", "282103", 9_800)])
    await sign_in(page, base, "yamada")
    assert page.url == f"{base}/admin/"
    await page.goto(f"{base}/admin/participants")
    await page.select_option("#f-type", "municipality")
    await page.fill("#f-id", "282096")
    await page.fill("#f-name", "豊岡市")
    await page.get_by_role("button", name="登録する").click()
    assert "検査数字が誤っています（6 ではなく 0）" in await page.inner_text("#f-id-error")
    await page.fill("#f-id", "282090")
    await page.get_by_role("button", name="登録する").click()
    assert page.url.endswith("/admin/participants/282090?done=participant_added")
    await page.get_by_role("button", name="認定する").click()
    assert "認定済み" in await page.locator("dl.props").inner_text()

    await page.get_by_role("link", name="参加トークンを発行する").click()
    await page.get_by_role("button", name="発行する").click()
    token = (await page.inner_text("#join-token")).strip()
    assert token.startswith("am1.") and f"--token {token}" in await page.inner_text("#join-command")
    await no_visible_copy_button(page, "token created")

    # usage: the figures are the table; the chart, which needs a script, is not shown
    await page.goto(f"{base}/admin/usage?period=2026-11")
    assert "125,000" in await page.locator(".table-wrap table").inner_text()
    assert "134,800" in await page.locator(".stats").inner_text()
    assert await page.locator("figure.usage-chart:visible").count() == 0
    await screenshot(page, "nojs-console-usage")

    # a destructive action is a confirmation page and a form, not a script's dialog
    await page.goto(f"{base}/admin/participants/282014/suspend/confirm")
    await page.get_by_role("button", name="停止する").click()
    assert "停止中" in await page.locator("dl.props").inner_text()
