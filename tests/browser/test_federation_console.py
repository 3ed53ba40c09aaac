"""The federation page (/admin/federation) in Chromium: the list with a pending federation, the
upload form, the remove confirmation; axe-core, a screenshot, and a phone's width."""

from __future__ import annotations

import pytest

from ..federation_fixtures import NamedMesh, stop
from .conftest import add_operator, check_axe, no_horizontal_scroll, screenshot, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
async def hyogo(tmp_path):
    hyogo = NamedMesh(tmp_path / "hyogo", "hyogo", "兵庫県")
    osaka = NamedMesh(tmp_path / "osaka", "osaka", "大阪府")
    await hyogo.init_registry()
    await osaka.init_registry()
    rc, _o, err = await hyogo.add(await osaka.export_to("127.0.0.1:9"))
    assert rc == 0, err
    await hyogo.start_registry()
    try:
        yield hyogo
    finally:
        await stop(hyogo)


async def test_federation_page(hyogo: NamedMesh, page, phone):
    base = hyogo.http_url
    await add_operator(hyogo, "yamada", "admin")
    await sign_in(page, base, "yamada")
    await page.get_by_role("link", name="メッシュ間連携").first.click()
    await page.wait_for_url(f"{base}/admin/federation")
    assert await page.get_by_role("heading", level=1).inner_text() == "メッシュ間連携（基盤間連携）"
    table = page.get_by_role("table", name="連携先のメッシュ")
    row = table.locator("tbody tr").first
    assert "osaka" in await row.inner_text() and "相手の登録待ち" in await row.inner_text()
    assert await page.get_by_label("相手メッシュの連携文書（JSON）").count() == 1
    assert not page.console_errors, page.console_errors
    await check_axe(page, "federation")
    await screenshot(page, "console-federation")
    # a long last error (gRPC text without spaces) wraps instead of widening the page
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await row.get_by_role("link", name="削除").click()
    await page.wait_for_url(f"{base}/admin/federation/osaka/remove")
    await check_axe(page, "federation remove confirmation")
    await page.get_by_role("button", name="連携を削除する").click()
    await page.wait_for_url(f"{base}/admin/federation?done=federation_removed")
    assert "連携先はありません" in await page.get_by_role("table", name="連携先のメッシュ").inner_text()

    await sign_in(phone, base, "yamada")
    await phone.goto(f"{base}/admin/federation")
    await no_horizontal_scroll(phone, "federation on a phone")
    await check_axe(phone, "federation on a phone")
