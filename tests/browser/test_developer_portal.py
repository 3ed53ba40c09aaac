"""The developer portal in a real browser: the index, the registry's API page with "try it"
against the live registry (public and with an operator's API key), the connector's API page,
the gRPC page and the adapter quick start; axe-core on each page type, screenshots, 360 px."""

from __future__ import annotations

import json

import aiohttp

from ..catalog_fixtures import setup_catalog_mesh
from ..conftest import MeshHarness
from .conftest import check_axe, no_horizontal_scroll, screenshot


async def test_find_an_api_and_try_it(harness: MeshHarness, page):
    h = harness
    await setup_catalog_mesh(h)
    base = h.http_url
    requested: list[str] = []                      # no CDN: every request goes to the registry
    page.on("request", lambda r: requested.append(r.url))
    await page.goto(f"{base}/developers/")
    assert await page.inner_text("h1") == "開発者ポータル"
    assert await page.get_attribute("nav a[aria-current=page]", "href") == "/developers/"
    await check_axe(page, "developer portal index")
    await screenshot(page, "developers-index")

    await page.get_by_role("link", name="レジストリ REST API").click()
    await page.wait_for_url(f"{base}/developers/api/registry")
    assert await page.inner_text("h1") == "レジストリ REST API"
    assert await page.locator("#try-key").is_visible()            # developers.js ran

    # try GET /api/v1/datasets: a real call, its answer shown in the page
    op = page.locator("#op-get-api-v1-datasets")
    await op.get_by_text("GET /api/v1/datasets を試す").click()
    await op.get_by_label("q", exact=True).fill("防災")
    await op.get_by_label("per_page").fill("5")
    await op.get_by_label("sort").select_option("title")
    await op.get_by_role("button", name="送信").click()
    status = op.locator(".try-status")
    await status.filter(has_text="HTTP 200").wait_for()
    assert page.url == f"{base}/developers/api/registry"         # stayed on the page
    assert await op.locator(".try-url").inner_text() == \
        "GET /api/v1/datasets?q=%E9%98%B2%E7%81%BD&sort=title&per_page=5"
    shown = json.loads(await op.locator(".try-body").inner_text())
    async with aiohttp.ClientSession() as s, s.get(
            f"{base}/api/v1/datasets", params={"q": "防災", "sort": "title", "per_page": "5"}) as r:
        assert shown == await r.json()                              # the live registry's answer
    assert shown["total"] >= 2 and "himeji-aed" in {d["id"] for d in shown["results"]}
    assert "\n  " in await op.locator(".try-body").inner_text()     # pretty-printed
    await op.locator("details.try").evaluate("e => e.scrollIntoView({block: 'start'})")
    await check_axe(page, "registry API page with a result")
    await screenshot(page, "developers-api", full_page=False)

    # an operator's operation: refused without a key, answered with one in the key field
    whoami = page.locator("#op-get-api-v1-admin-whoami")
    await whoami.get_by_text("GET /api/v1/admin/whoami を試す").click()
    await whoami.get_by_role("button", name="送信").click()
    await whoami.locator(".try-status").filter(has_text="HTTP 401").wait_for()
    assert "operator_credentials_required" in await whoami.locator(".try-body").inner_text()
    await page.get_by_label("API キー（任意）").fill(await h.operator_key("auditor"))
    await whoami.get_by_role("button", name="送信").click()
    await whoami.locator(".try-status").filter(has_text="HTTP 200").wait_for()
    assert json.loads(await whoami.locator(".try-body").inner_text())["role"] == "auditor"
    # no CSP refusal, no script error (the 401 above and a missing favicon are logged too)
    assert [e for e in page.console_errors if not e.startswith("Failed to load resource")] == []
    assert any("/static/developers.js" in url for url in requested)
    assert [url for url in requested if not url.startswith(base + "/")] == []


async def test_connector_api_and_grpc_pages(running: MeshHarness, page):
    base = running.http_url
    await page.goto(f"{base}/developers/api/connector")
    assert await page.locator("form.try-form").count() == 0
    await check_axe(page, "connector API page")

    await page.goto(f"{base}/developers/")
    await page.get_by_role("link", name="areamesh.v1.PeerService").click()
    await page.wait_for_url(f"{base}/developers/grpc#service-PeerService")
    transfer = page.locator("#service-PeerService tr", has_text="Transfer").first
    assert "サーバーストリーミング" in await transfer.inner_text()
    await transfer.get_by_role("link", name="TransferChunk", exact=True).click()
    assert page.url.endswith("#type-areamesh-v1-TransferChunk")
    assert "oneof body" in await page.locator("#type-areamesh-v1-TransferChunk").inner_text()
    await check_axe(page, "gRPC page")
    await page.goto(f"{base}/developers/grpc")
    await screenshot(page, "developers-grpc", full_page=False)


async def test_adapter_quick_start(running: MeshHarness, page):
    base = running.http_url
    await page.goto(f"{base}/developers/")
    await page.get_by_role("link", name="アダプタ作成クイックスタートを読む").click()
    await page.wait_for_url(f"{base}/developers/adapters")
    assert await page.locator("h2#s-守るべき契約-connector-adapters-base-py").count() == 1
    assert "class Source(Protocol):" in await page.locator("article pre").nth(1).inner_text()
    assert 'areamesh.adapters' in await page.locator("article").inner_text()
    await check_axe(page, "adapter quick start")
    await screenshot(page, "developers-adapters")
    await page.goto(f"{base}/developers/adapters?lang=en")
    assert await page.locator("article h2").first.inner_text() == "What an adapter is"


async def test_pages_at_360px(running: MeshHarness, phone):
    base = running.http_url
    for path in ("/developers/", "/developers/api/registry", "/developers/grpc",
                 "/developers/adapters"):
        await phone.goto(base + path)
        await no_horizontal_scroll(phone, path)
    await phone.goto(f"{base}/developers/api/registry")
    op = phone.locator("#op-get-api-v1-datasets-id")
    await op.get_by_text("を試す").click()
    await op.get_by_label("id").fill("no-such-dataset")
    await op.get_by_role("button", name="送信").click()
    await op.locator(".try-status").filter(has_text="HTTP 404").wait_for()
    await no_horizontal_scroll(phone, "registry API page with a result")
    await check_axe(phone, "registry API page at 360 px")
