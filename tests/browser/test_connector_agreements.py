"""The consumer's operator in a real browser, against two real connectors (大阪府 provides, 加古川市
consumes): finds the dataset in /admin/catalog/, requests an agreement with the wrong purpose and
reads why it was refused, requests with the right purpose and sees it FINALIZED, opens it from
the list. axe-core on every page type; screenshots of the list, a refusal and the catalog."""

from __future__ import annotations

from ..conftest import MeshHarness
from ..test_connector_agreement_pages import base_of, two_connectors
from ..transfer_fixtures import DATASET_ID
from .conftest import check_axe, no_horizontal_scroll, screenshot, sign_in

TITLE = "大阪府 市区町村別人口（配信）"


async def request(page, purpose: str, offer: str = "research-use") -> None:
    await page.get_by_label("提供条件", exact=True).select_option(offer)
    await page.get_by_label("利用目的").fill(purpose)
    await page.get_by_role("button", name="申し込む").click()
    await page.wait_for_load_state()


async def test_find_request_refused_then_finalized(harness: MeshHarness, page, phone):
    h = harness
    _, consumer = await two_connectors(h, {"kakogawa": [("tanaka", "admin")]})
    base = base_of(consumer)
    await sign_in(page, base, "tanaka")

    # the catalog of the registry, searched from the connector
    await page.get_by_role("link", name="カタログを探す").click()
    await page.get_by_label("キーワード").fill("人口")
    await page.get_by_role("button", name="検索").click()
    await page.wait_for_load_state()
    assert TITLE in await page.inner_text("main")
    await check_axe(page, "catalog search")
    await screenshot(page, "connector-catalog")
    await page.get_by_role("link", name=TITLE).click()
    await page.wait_for_load_state()
    assert page.url == f"{base}/admin/catalog/{DATASET_ID}"
    offers = await page.locator("#offers + .offer, .offer").all_inner_texts()
    assert "研究目的に限り、すべての参加者が利用できます。転送は最大 1 回まで。" in "".join(offers)
    await check_axe(page, "catalog dataset page")

    # the wrong purpose: the page says which constraint, which claim, who and when
    await request(page, "観光")
    assert "/admin/agreements/" in page.url
    assert "合意は成立しませんでした" in await page.get_by_role("alert").inner_text()
    why = await page.locator("section.why").inner_text()
    assert "利用目的「観光」は許可された目的「研究」と異なります" in why
    assert "申込みで申告された利用目的" in why and "purpose eq 研究" in why
    assert "提供者である相手方（urn:areamesh:org:270008:node:main）が" in why and "JST" in why
    await check_axe(page, "terminated agreement")
    await screenshot(page, "connector-agreement-terminated")
    refused = page.url.split("/admin/agreements/")[1].split("?")[0]
    await phone.context.add_cookies(await page.context.cookies())
    await phone.goto(f"{base}/admin/agreements/{refused}")
    await screenshot(phone, "connector-agreement-terminated-phone")
    await no_horizontal_scroll(phone, "terminated agreement at 360 px")

    # the right purpose: FINALIZED, then found again through the list
    await page.goto(f"{base}/admin/catalog/{DATASET_ID}")
    await request(page, "研究")
    assert "合意が成立しました" in await page.get_by_role("status").first.inner_text()
    agreed = page.url.split("/admin/agreements/")[1].split("?")[0]
    await check_axe(page, "finalized agreement")
    await page.get_by_role("link", name="利用契約").first.click()
    await page.wait_for_load_state()
    await page.get_by_label("状態", exact=True).select_option("FINALIZED")
    await page.get_by_role("button", name="絞り込む").click()
    await page.wait_for_load_state()
    table = await page.locator("table").inner_text()
    assert agreed[:8] in table and refused[:8] not in table
    await page.goto(f"{base}/admin/agreements/")
    await check_axe(page, "agreement list")
    await screenshot(page, "connector-agreements")
    await page.get_by_role("link", name=agreed[:8]).click()
    await page.wait_for_load_state()
    main = await page.inner_text("main")
    assert "確定（公証済み）" in main and "この合意文書のダイジェストと一致します" in main
    assert "署名はすべて検証できました" in main
    await page.get_by_text("合意文書を表示").click()                  # <details>, no script
    assert '"purpose": "研究"' in await page.locator("#agreement-json").inner_text()
    await check_axe(page, "finalized agreement, document open")
    await screenshot(page, "connector-agreement")
    assert await page.get_by_role("link", name="この合意の転送").get_attribute("href") == \
        f"/admin/transfers/?agreement={agreed}"
    await phone.goto(f"{base}/admin/agreements/{agreed}")
    await no_horizontal_scroll(phone, "finalized agreement at 360 px")
    await phone.goto(f"{base}/admin/agreements/")
    await no_horizontal_scroll(phone, "agreement list at 360 px")
    await phone.goto(f"{base}/admin/catalog/{DATASET_ID}")
    await screenshot(phone, "connector-catalog-dataset-phone")
    await no_horizontal_scroll(phone, "catalog dataset at 360 px")

    # the confirmation page before ending it
    await page.get_by_role("link", name="この合意を終了する").click()
    await page.wait_for_load_state()
    await check_axe(page, "terminate confirmation")
    await page.get_by_label("終了の理由").select_option("purpose_fulfilled")
    await page.get_by_role("button", name="合意を終了する").click()
    await page.wait_for_load_state()
    assert "合意を終了し、相手方に通知しました" in await page.get_by_role("status").first.inner_text()
    assert "目的達成（purpose_fulfilled）" in await page.locator("section.why").inner_text()
    refused_scripts = [e for e in page.console_errors if "Content Security Policy" in e or "Uncaught" in e]
    assert not refused_scripts, refused_scripts
