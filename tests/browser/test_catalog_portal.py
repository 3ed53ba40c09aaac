"""The catalog portal in a real browser: search 防災, narrow by a facet, open a dataset, copy
its contract command (the clipboard holds exactly the command); the same by keyboard alone;
every page type under axe-core and at 360 px wide."""

from __future__ import annotations

from ..conftest import MeshHarness
from .conftest import check_axe, no_horizontal_scroll, screenshot

COMMAND = ("areamesh connector contract request --data-dir DIR --dataset himeji-evacuation "
           "--offer open-use --purpose 防災")


async def result_ids(page) -> list[str]:
    hrefs = await page.locator(".results h3 a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    return [h.removeprefix("/datasets/") for h in hrefs]


async def test_search_narrow_open_copy(catalog: MeshHarness, page):
    base = catalog.http_url
    failed: list[str] = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    requested: list[str] = []                      # vendored assets only: nothing from a CDN
    page.on("request", lambda r: requested.append(r.url))
    await page.goto(base + "/")
    await check_axe(page, "search page (browse)")
    await page.get_by_label("キーワード").fill("防災")
    await page.get_by_role("button", name="検索").click()
    await page.wait_for_url("**/?q=*")
    assert set(await result_ids(page)) == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    assert await page.inner_text("#results-heading") == "3 件のデータセット"
    await check_axe(page, "search page with results")

    facet = page.locator("section[aria-labelledby=facet-publisher]")
    await facet.get_by_role("link", name="姫路市（282014）").click()
    await page.wait_for_url("**publisher=282014*")
    assert set(await result_ids(page)) == {"himeji-aed", "himeji-evacuation"}
    assert "解除" in await page.inner_text(".active-filters")
    await check_axe(page, "search page with an active filter")
    await screenshot(page, "catalog-search")

    await page.get_by_role("link", name="姫路市 指定緊急避難場所一覧").click()
    await page.wait_for_url(base + "/datasets/himeji-evacuation")
    assert await page.inner_text("h1") == "姫路市 指定緊急避難場所一覧"
    assert "すべての参加者が目的を問わず利用できます。" in await page.inner_text(".offer")
    await check_axe(page, "dataset page")
    await page.get_by_role("button", name="提供条件 open-use の契約申込コマンドをコピー").click()
    await page.locator(".offer .copy-status").filter(has_text="コピーしました").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == COMMAND
    await screenshot(page, "catalog-dataset")
    await page.locator("section.offer").first.evaluate("e => e.scrollIntoView({block: 'center'})")
    await screenshot(page, "catalog-dataset-offer", full_page=False)   # docs/images
    # no script or CSP error; the only missing file is the browser's own favicon request
    assert [e for e in page.console_errors if not e.startswith("Failed to load resource")] == []
    assert {url.removeprefix(base) for url in failed} <= {"/favicon.ico"}
    assert any("/static/copy.js" in url for url in requested)
    assert [url for url in requested if not url.startswith(base + "/")] == []


async def test_keyboard_alone_from_search_to_the_copy_button(catalog: MeshHarness, page):
    await page.goto(catalog.http_url + "/")
    await page.keyboard.press("Tab")                       # the skip link comes first
    assert await page.evaluate("document.activeElement.className") == "skip"
    for _ in range(30):
        if await page.evaluate("document.activeElement.id") == "q":
            break
        await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "q"
    await page.keyboard.type("避難")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/?q=*")
    target = "/datasets/himeji-evacuation"
    for _ in range(120):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.getAttribute('href')") == target:
            break
    assert await page.evaluate("document.activeElement.getAttribute('href')") == target
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"                              # the focus is visible
    await page.keyboard.press("Enter")
    await page.wait_for_url("**" + target)
    for _ in range(200):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.dataset.copy || ''") == "cmd-open-use":
            break
    assert await page.evaluate("document.activeElement.dataset.copy") == "cmd-open-use"
    await page.keyboard.press("Enter")
    await page.locator(".offer .copy-status").filter(has_text="コピーしました").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == COMMAND


async def test_organisation_and_theme_pages(catalog: MeshHarness, page):
    base = catalog.http_url
    await page.goto(base + "/organizations/")
    assert await page.inner_text("h1") == "参加組織"
    await check_axe(page, "organisation list")
    await page.get_by_role("link", name="加古川市").click()
    await page.wait_for_url(base + "/organizations/282103")
    assert "稲美町" in await page.inner_text("dl.props")
    await check_axe(page, "organisation page")
    await screenshot(page, "catalog-organization")
    await page.goto(base + "/organizations/283819")
    assert "共同利用" in await page.inner_text("dl.props")

    await page.goto(base + "/themes/")
    await check_axe(page, "theme list")
    await page.get_by_role("link", name="防災", exact=True).click()
    await page.wait_for_url(base + "/themes/disaster-prevention")
    assert set(await result_ids(page)) == {"himeji-aed", "himeji-evacuation", "inami-ponds"}
    await check_axe(page, "theme page")
    await page.goto(base + "/datasets/osaka-medical?lang=en")
    assert await page.inner_text("h1") == "Osaka Prefecture medical institutions"
    assert "only for the purpose 研究" in await page.inner_text(".offer")
    await check_axe(page, "dataset page in English")
    await page.goto(base + "/datasets/nothing-here?lang=ja")
    assert "ページが見つかりません" in await page.inner_text("h1")


PAGES = ["/datasets/himeji-aed", "/?q=防災&publisher=282014", "/organizations/",
         "/organizations/282103", "/themes/", "/themes/disaster-prevention"]


async def test_pages_at_360_px(catalog: MeshHarness, phone):
    for path in PAGES:
        await phone.goto(catalog.http_url + path)
        await no_horizontal_scroll(phone, path)
        await check_axe(phone, f"{path} at 360 px")
        if path.startswith("/?"):        # the results come before the filters on a phone
            box = await phone.locator(".results h3 a").first.bounding_box()
            assert box and box["y"] < 740 * 1.2, "the first result is far below the fold"
            await screenshot(phone, "catalog-phone", full_page=False)
