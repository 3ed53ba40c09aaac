"""The resident portal in chromium: a resident signs in through the real OpenID provider
(pyop's, filling its login form), sees where their data went, withdraws a consent, and the next
fetch leaves their records out; another resident never sees it; axe-core on every page type;
screenshots at 1280 and 360 px."""

from __future__ import annotations

import re

import pytest

from ..conftest import MeshHarness
from ..portal_fixtures import (
    CLIENT_ID,
    RESIDENT_A,
    RESIDENT_B,
    agreement_and_fetch,
    client_secret,
    link_ids,
    personal_mesh,
    start_himeji,
    start_pyop,
)
from ..transfer_fixtures import fetch_cli, ndjson_rows
from .conftest import check_axe, no_horizontal_scroll, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration]


async def sign_in(page, base: str, resident: str, *, check: bool = False) -> None:
    """From a portal page to the provider's login form and back, as a resident does."""
    await page.goto(base + "/portal/flows")
    assert "/portal/login" in page.url
    if check:
        await check_axe(page, "portal sign-in page")
    await page.get_by_role("button", name="市のIDでサインインする").click()
    await page.get_by_label("利用者ID").fill(resident)
    await page.get_by_label("パスワード").fill("pass-" + resident)
    await page.get_by_role("button", name="ログイン").click()
    await page.wait_for_url(re.compile(r".*/portal/flows$"))


@pytest.mark.timeout(400)
async def test_resident_portal_in_the_browser(harness: MeshHarness, page, phone, browser):
    h = harness
    await personal_mesh(h)
    secret, secret_file = client_secret(h)
    idp = await start_pyop(secret)
    try:
        base = await start_himeji(h, idp.issuer, secret_file)
        idp.add_client(CLIENT_ID, secret, base + "/portal/callback")
        agreement = await agreement_and_fetch(h, h.root / "got" / "a.ndjson")
        await link_ids(h, RESIDENT_A)

        failed: list[str] = []
        page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
                if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
        await sign_in(page, base, RESIDENT_A, check=True)
        main = page.locator("main")
        assert agreement in await main.inner_text() and "研究" in await main.inner_text()
        await check_axe(page, "portal flows")
        await screenshot(page, "portal-flows")

        await page.get_by_role("link", name="わたしのデータ").first.click()
        assert "あなたの記録：2件" in await main.inner_text()
        await check_axe(page, "portal my data")
        await screenshot(page, "portal-mydata")

        await page.get_by_role("link", name="ID連携").click()
        text = await main.inner_text()
        assert "大阪府" in text and "OSK-7731" not in text          # the other id itself is never shown
        await check_axe(page, "portal linked ids")
        await screenshot(page, "portal-links")
        await page.get_by_role("link", name="ID連携を解除する").click()
        await check_axe(page, "portal unlink confirmation")
        await page.get_by_role("button", name="連携を解除する").click()
        text = await main.inner_text()
        assert "ID連携を解除しました" in text and "連携していません" in text

        # a new consent: form → confirmation → recorded
        await page.get_by_role("link", name="同意の管理").click()
        await page.get_by_role("link", name="新しく同意する").click()
        await check_axe(page, "portal consent form")
        await page.get_by_label("提供先の組織").select_option("270008")
        await page.get_by_label("利用目的").fill("健康増進")
        await page.get_by_label("BMI").check()
        await page.get_by_role("button", name="確認画面へ進む").click()
        assert "BMI" in await main.inner_text()
        await check_axe(page, "portal consent confirmation")
        await page.get_by_role("button", name="この内容で同意する").click()
        assert "同意を記録しました" in await main.inner_text()
        await check_axe(page, "portal consents")
        await screenshot(page, "portal-consents")

        # withdraw the consent to 加古川市 (confirmed first); the next fetch leaves A out
        card = page.locator("li.card", has_text="加古川市")
        await card.get_by_role("link", name="同意を撤回する").click()
        await check_axe(page, "portal withdrawal confirmation")
        await page.get_by_label("撤回の理由（任意）").fill("本人の申出")
        await page.get_by_role("button", name="同意を撤回する").click()
        text = await main.inner_text()
        assert "同意を撤回しました" in text and "本人の申出" in text
        rc, _, err = await fetch_cli(h, agreement, h.root / "got" / "b.ndjson")
        assert rc == 0, err
        ids = {row["住民ID"] for row in ndjson_rows(h.root / "got" / "b.ndjson")}
        assert RESIDENT_A not in ids and RESIDENT_B in ids
        withdrawn = page.url
        assert not failed, failed          # no missing style sheet, no refused request (CSP)
        assert not [e for e in page.console_errors if "status of 404" not in e], page.console_errors

        # resident B, in another browser, never sees A's consents; A's consent id is not found
        context = await browser.new_context(locale="ja-JP", timezone_id="Asia/Tokyo")
        other = await context.new_page()
        await sign_in(other, base, RESIDENT_B)
        await other.goto(base + "/portal/consents")
        text = await other.locator("main").inner_text()
        assert "健康増進" not in text and "本人の申出" not in text and "研究" in text
        await page.goto(base + "/portal/consents")
        a_id = (await page.locator("a", has_text="内容を変更する").first.get_attribute("href")).split("/")[3]
        response = await other.goto(base + f"/portal/consents/{a_id}/change")
        assert response.status == 404
        await check_axe(other, "portal error page")
        await context.close()
        assert withdrawn.endswith("?done=withdrawn")

        # a 360 px phone: every page fits, touch targets are large
        await sign_in(phone, base, RESIDENT_A)
        for path in ("/portal/data", "/portal/flows", "/portal/links", "/portal/consents/new",
                     "/portal/consents"):
            await phone.goto(base + path)
            await no_horizontal_scroll(phone, path)
        small = await phone.evaluate("""() => [...document.querySelectorAll(
            'main a.button, main button, nav a, main input, main select')]
            .filter(e => e.getBoundingClientRect().height < 44).map(e => e.outerHTML.slice(0, 80))""")
        assert not small, small
        await screenshot(phone, "portal-phone")
    finally:
        await idp.stop()
