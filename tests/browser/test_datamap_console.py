"""The data map page (/admin/datamap) in Chromium: the two tables, the server-drawn SVG graph
with its text alternative, the downloads; axe-core, a screenshot, and a phone's width."""

from __future__ import annotations

import pytest

from ..conftest import MeshHarness
from ..test_datamap import (
    ASSET_HEADERS,
    SERVICE_HEADERS,
    mesh,  # noqa: F401  (the fixture: a small mesh with services and flows)
)
from .conftest import add_operator, check_axe, no_horizontal_scroll, screenshot, sign_in

pytestmark = pytest.mark.integration


async def test_datamap_page(mesh: MeshHarness, page, phone):  # noqa: F811
    h = mesh
    base = h.http_url
    await add_operator(h, "sato", "auditor")
    await sign_in(page, base, "sato")
    await page.get_by_role("link", name="データマップ").first.click()
    await page.wait_for_url(f"{base}/admin/datamap")
    assert await page.get_by_role("heading", level=1).inner_text() == "データマップ"
    service = page.get_by_role("table", name="サービス側データマップ")
    assert await service.locator("thead th").all_inner_texts() == SERVICE_HEADERS
    asset = page.get_by_role("table", name="データアセット側データマップ")
    assert await asset.locator("thead th").all_inner_texts() == ASSET_HEADERS
    row = asset.locator("tr", has=page.locator("th", has_text="加古川市 子育て施設一覧"))
    assert "子育て応援アプリ（姫路市）：150件" in await row.inner_text()
    graph = page.get_by_role("img", name="データマップの図：提供組織・データアセット・サービス・利用組織")
    assert await graph.count() == 1
    box = await graph.bounding_box()
    assert box and box["width"] > 800 and box["height"] > 100
    flows = page.get_by_role("table", name="データの流れと件数")
    assert await flows.locator("tbody tr").count() == 3
    assert not page.console_errors, page.console_errors
    await check_axe(page, "data map")
    await screenshot(page, "console-datamap")
    async with page.expect_download() as info:
        await page.get_by_role("link", name="Excel（xlsx、2シート）").click()
    download = await info.value
    assert download.suggested_filename == "datamap.xlsx"

    await sign_in(phone, base, "sato")
    await phone.goto(f"{base}/admin/datamap")
    await no_horizontal_scroll(phone, "data map on a phone")
    await check_axe(phone, "data map on a phone")
