"""Signing in to the registry's console in a real browser: wrong password, CSRF, sign-out,
an expired or forged session, and the shared pages (sign-in, error) under axe-core."""

from __future__ import annotations

import aiohttp

from ..conftest import MeshHarness
from .conftest import add_operator, check_axe, screenshot, sign_in


async def test_sign_in_wrong_password_then_right_then_out(running: MeshHarness, page):
    h = running
    await add_operator(h, "yamada", "admin")
    base = h.http_url
    await page.goto(f"{base}/admin/")
    assert page.url.startswith(f"{base}/admin/login?next=")          # strangers go to sign-in
    await check_axe(page, "sign-in page")
    await screenshot(page, "signin")

    await sign_in(page, base, "yamada", "wrong password")
    alert = page.get_by_role("alert")
    assert "オペレーター名またはパスワードが違います" in await alert.inner_text()
    assert await page.get_by_label("オペレーター名").input_value() == "yamada"
    await check_axe(page, "sign-in page with an error")

    await sign_in(page, base, "yamada")
    assert page.url == f"{base}/admin/"
    assert "yamada でサインイン中" in await page.inner_text("header")
    cookies = {c["name"]: c for c in await page.context.cookies()}
    assert cookies["am_session"]["httpOnly"] and cookies["am_session"]["sameSite"] == "Strict"

    await page.get_by_role("button", name="サインアウト").click()
    await page.wait_for_url(f"{base}/admin/login")
    await page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url                                  # the session is gone
    # the old cookie value is dead on the server, not only deleted in this browser
    async with aiohttp.ClientSession(cookies={"am_session": cookies["am_session"]["value"]}) as s:
        async with s.get(f"{base}/api/v1/admin/participants") as r:
            assert r.status == 401


async def test_form_post_without_its_csrf_token_is_refused(running: MeshHarness, page):
    h = running
    await add_operator(h, "yamada", "admin")
    await sign_in(page, h.http_url, "yamada")
    session = next(c for c in await page.context.cookies() if c["name"] == "am_session")
    jar = {"am_session": session["value"]}
    async with aiohttp.ClientSession(cookies=jar) as s:
        # the session alone does not authorise a change: a cross-site form could send it
        async with s.post(f"{h.http_url}/api/v1/admin/participants",
                          json={"id": "282201", "name": "豊岡市", "type": "municipality"}) as r:
            assert r.status == 403
            assert (await r.json())["error"]["code"] == "csrf_token_invalid"
        async with s.post(f"{h.http_url}/admin/logout", data={"csrf_token": "guess"},
                          headers={"Accept": "text/html"}) as r:
            assert r.status == 403
            assert "確認用トークン" in await r.text()
    # the same session with its token may act
    token = await page.locator("header input[name=csrf_token]").get_attribute("value")
    async with aiohttp.ClientSession(cookies=jar) as s:
        async with s.post(f"{h.http_url}/api/v1/admin/participants",
                          json={"id": "282201", "name": "豊岡市", "type": "municipality"},
                          headers={"X-CSRF-Token": token}) as r:
            assert r.status in (200, 201), await r.text()


async def test_sign_in_form_needs_its_own_token(running: MeshHarness):
    h = running
    await add_operator(h, "yamada", "admin")
    async with aiohttp.ClientSession() as s:   # a login CSRF: a foreign form with no cookie
        async with s.post(f"{h.http_url}/admin/login",
                          data={"name": "yamada", "password": "correct horse battery staple",
                                "csrf_token": "x" * 43}, allow_redirects=False) as r:
            assert r.status == 403
            assert "am_session" not in r.cookies


async def test_error_page_and_english(running: MeshHarness, page):
    await page.goto(f"{running.http_url}/no/such/page")
    assert await page.title() and "ページが見つかりません" in await page.inner_text("h1")
    await check_axe(page, "error page")
    await page.goto(f"{running.http_url}/admin/login?lang=en")
    assert await page.inner_text("h1") == "Sign in"
    assert await page.get_attribute("html", "lang") == "en"
    await page.goto(f"{running.http_url}/admin/login")              # the choice is remembered
    assert await page.inner_text("h1") == "Sign in"
    headers = (await page.goto(f"{running.http_url}/admin/login")).headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
