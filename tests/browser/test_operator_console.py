"""The operator console in a real browser (issue 12, "Checked by"): an admin adds a participant
(a wrong check digit first), certifies it, creates a join token and copies it from the page; a
real connector process joins with that token, its node appears in the console, the admin revokes
it through the confirmation page and the registry refuses the node. An auditor sees every page
but no form, and a POST of theirs is refused. axe-core runs on every page type; screenshots of
the main pages go to build/screenshots/."""

from __future__ import annotations

import shlex
from zoneinfo import ZoneInfo

import aiohttp
import grpc
import pytest
from cryptography import x509

from mesh.proto.areamesh.v1 import registry_pb2

from ..conftest import MeshHarness, wait_for
from ..security.test_http_auth import record_usage
from .conftest import add_operator, check_axe, no_horizontal_scroll, screenshot, sign_in


def script_errors(page) -> list[str]:
    """Errors of scripts and CSP refusals (a 4xx page the test asked for is not one)."""
    return [e for e in page.console_errors if not e.startswith("Failed to load resource")]


async def crl_figures(page, base: str) -> tuple[int, int]:
    """(number, revoked certificates) of the revocation list page."""
    await page.goto(f"{base}/admin/revocation")
    values = [v.replace(",", "") for v in await page.locator("dl.props dd").all_inner_texts()]
    return int(values[0]), int(values[3])


async def _ok(page, text: str) -> None:
    assert text in await page.locator(".alert.ok").inner_text()


async def test_admin_adds_certifies_enrols_and_revokes_a_node(running: MeshHarness, page):
    h = running
    base = h.http_url
    await add_operator(h, "yamada", "admin")
    await sign_in(page, base, "yamada")
    assert page.url == f"{base}/admin/"
    await check_axe(page, "console overview")
    await screenshot(page, "console-overview")

    # add a participant: a wrong check digit first, the message next to the field
    await page.get_by_role("link", name="参加者", exact=True).click()
    await page.select_option("#f-type", "municipality")
    await page.fill("#f-id", "282096")
    await page.fill("#f-name", "豊岡市")
    await page.get_by_role("button", name="登録する").click()
    error = page.locator("#f-id-error")
    assert "検査数字が誤っています（6 ではなく 0）" in await error.inner_text()
    assert await page.locator("#f-id").get_attribute("aria-invalid") == "true"
    assert await page.input_value("#f-name") == "豊岡市"          # what was typed is kept
    await check_axe(page, "add form with an error")
    await page.fill("#f-id", "282090")
    await page.get_by_role("button", name="登録する").click()
    assert page.url.endswith("/admin/participants/282090?done=participant_added")
    await _ok(page, "参加者を登録しました")
    assert "認定待ち" in await page.locator("dl.props").inner_text()

    await page.get_by_role("button", name="認定する").click()
    await _ok(page, "参加者を認定しました")
    assert "認定済み" in await page.locator("dl.props").inner_text()
    await check_axe(page, "participant page")

    # a join token, shown once, copied with its button
    await page.get_by_role("link", name="参加トークンを発行する").click()
    assert await page.input_value("#f-participant") == "282090"
    await page.fill("#f-ttl", "2h")
    await page.get_by_role("button", name="発行する").click()
    assert "参加トークンを発行しました" in await page.inner_text("h1")
    token = (await page.locator("#join-token").inner_text()).strip()
    assert token.startswith("am1.")
    await page.get_by_role("button", name="参加トークンをコピー").click()
    await page.locator(".copy-status").first.filter(has_text="コピーしました").wait_for()
    assert await page.evaluate("navigator.clipboard.readText()") == token
    command = (await page.locator("#join-command").inner_text()).strip()
    assert f"--registry {h.grpc_address} --enrol {h.enrol_address} --token {token}" in command
    await page.get_by_role("button", name="参加コマンドをコピー").click()
    await page.locator(".copy-status").nth(1).filter(has_text="コピーしました").wait_for()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == command
    await check_axe(page, "token created")
    await screenshot(page, "console-token")
    assert not script_errors(page), page.console_errors
    revocation_before = await crl_figures(page, base)

    # a real connector process joins by running the copied command as it is, only its data
    # directory (a placeholder for the host's) pointed at this test's
    argv = shlex.split(copied)
    assert argv[:3] == ["areamesh", "connector", "join"]
    argv[argv.index("--data-dir") + 1] = str(h.root / "toyooka")
    rc, _out, err = await h.cli(*argv[1:])
    assert rc == 0, err
    await h.start_connector("toyooka", "--heartbeat-interval", "1s")

    async def seen() -> bool:
        await page.goto(f"{base}/admin/nodes")
        row = page.locator("tr", has=page.locator("a", has_text="282090"))
        return await row.count() == 1 and "JST" in await row.inner_text()

    await wait_for(seen, timeout=60, interval=0.5, what="the node's heartbeat in the console")
    row = page.locator("tr", has=page.locator("a", has_text="282090"))
    assert "有効" in await row.inner_text() and "127.0.0.1:" in await row.inner_text()
    cert = x509.load_pem_x509_certificate((h.root / "toyooka" / "tls" / "node.crt").read_bytes())
    expiry = cert.not_valid_after_utc.astimezone(ZoneInfo("Asia/Tokyo"))
    assert expiry.strftime("%Y-%m-%d %H:%M JST") in await row.inner_text()   # certificate expiry
    await check_axe(page, "nodes")
    await screenshot(page, "console-nodes")

    # revoke it through the confirmation page
    await row.get_by_role("link", name="失効させる").click()
    assert page.url.endswith("/admin/nodes/282090/main/revoke/confirm")
    await check_axe(page, "revoke node confirmation")
    await page.fill("#f-reason", "鍵の漏えいの疑い")
    await page.get_by_role("button", name="失効させる").click()
    await _ok(page, "ノードの証明書を失効させ")
    row = page.locator("tr", has=page.locator("a", has_text="282090"))
    assert "失効" in await row.inner_text()

    # the registry refuses the node's certificate from now on
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await h.registry_stub(h.node_credentials("toyooka")).ListNodes(
            registry_pb2.ListNodesRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "certificate_revoked" in refused.value.details()
    # the revocation list page shows the new list, as /api/v1/crl serves it, the node on it
    number, revoked = await crl_figures(page, base)
    assert number > revocation_before[0] and revoked == revocation_before[1] + 1
    async with aiohttp.ClientSession() as s, s.get(f"{base}/api/v1/crl") as r:
        crl = x509.load_der_x509_crl(await r.read())
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    await check_axe(page, "revocation list")

    await page.get_by_role("link", name="監査ログ").click()
    table = await page.locator("table").inner_text()
    assert "node.revoke" in table and "282090/main" in table and "鍵の漏えいの疑い" in table
    assert "改ざんされていません" in await page.locator(".alert.ok").inner_text()
    await check_axe(page, "audit log")
    await screenshot(page, "console-audit")


async def test_other_console_pages(running: MeshHarness, page):
    h = running
    base = h.http_url
    await add_operator(h, "yamada", "admin")
    record_usage(h, [("270008", "282014", 125_000), ("270008", "282103", 48_200),
                     ("282014", "282103", 9_800), ("282103", "270008", 3_150)])
    await sign_in(page, base, "yamada")

    # hosting: 加古川市 hosted by 姫路市, then removed after confirmation
    await page.goto(f"{base}/admin/participants/282103")
    await page.select_option("#f-host", "282014")
    await page.get_by_role("button", name="受け入れ先を登録する").click()
    await _ok(page, "共同利用の受け入れを登録しました")
    await page.goto(f"{base}/admin/participants")
    row = page.locator("tr", has=page.locator("a", has_text="282103"))
    assert "282014 姫路市" in await row.inner_text()
    await check_axe(page, "participants")
    await screenshot(page, "console-participants")
    rc, _, err = await h.cli("registry", "participant", "import", "--data-dir",
                             str(h.registry_dir))                 # the whole country
    assert rc == 0, err
    await page.goto(f"{base}/admin/participants")
    await page.get_by_label("参加者を探す").fill("ｱｶｼ")
    await page.get_by_label("種別").first.select_option("municipality")
    await page.get_by_role("button", name="絞り込む").click()
    row = page.locator("tr", has=page.locator("a", has_text="282031"))
    assert "アカシシ" in await row.inner_text()
    await check_axe(page, "participants searched")
    await screenshot(page, "console-participants-search")
    await page.goto(f"{base}/admin/participants/282103")
    await page.get_by_role("link", name="共同利用を解除する").click()
    await check_axe(page, "remove hosting confirmation")
    await page.get_by_role("button", name="共同利用を解除する").click()
    await _ok(page, "共同利用の受け入れを解除しました")

    await page.goto(f"{base}/admin/participants/282014/suspend/confirm")
    await check_axe(page, "suspend confirmation")
    assert await page.get_by_role("button", name="停止する").count() == 1

    # a token revoked while unused
    await page.goto(f"{base}/admin/tokens")
    await page.select_option("#f-participant", "282103")
    await page.get_by_role("button", name="発行する").click()
    await page.get_by_role("link", name="参加トークンの一覧へ戻る").click()
    await check_axe(page, "tokens")
    await page.get_by_role("link", name="失効させる").first.click()
    await check_axe(page, "revoke token confirmation")
    await page.get_by_role("button", name="失効させる").click()
    await _ok(page, "参加トークンを失効させました")

    await page.goto(f"{base}/admin/criteria")
    await page.fill("#f-criteria", "1. 個人情報保護方針を公開していること\n2. 接続試験に合格していること")
    await page.get_by_role("button", name="保存").click()
    await _ok(page, "認定基準を保存しました")
    assert "接続試験に合格していること" in await page.input_value("#f-criteria")
    await check_axe(page, "criteria")
    await page.goto(f"{base}/organizations/")                      # published to everyone
    assert "2. 接続試験に合格していること" in await page.locator(".criteria").inner_text()
    await page.goto(f"{base}/admin/revocation")
    await check_axe(page, "revocation list")

    requested: list[str] = []                      # uPlot is vendored: nothing from a CDN
    page.on("request", lambda r: requested.append(r.url))
    await page.goto(f"{base}/admin/usage")
    await page.fill("#f-period", "2026-11")
    await page.get_by_role("button", name="表示").click()
    assert "period=2026-11" in page.url
    await page.locator("#usage-chart canvas").wait_for()          # uPlot drew the chart
    assert "186,150" in await page.locator(".stats").inner_text()
    assert "125,000" in await page.locator(".table-wrap table").inner_text()
    await check_axe(page, "usage")
    await screenshot(page, "console-usage")
    assert not script_errors(page), page.console_errors           # no CSP refusal, no error
    assert any("/static/vendor/uplot/uPlot.iife.min.js" in url for url in requested)
    assert [url for url in requested if not url.startswith(base + "/")] == []


async def test_auditor_sees_no_forms_and_is_refused(running: MeshHarness, phone):
    h = running
    base = h.http_url
    await add_operator(h, "sato", "auditor")
    await phone.goto(f"{base}/admin/login")
    await no_horizontal_scroll(phone, "sign-in page")
    await check_axe(phone, "sign-in page at 360 px")
    await sign_in(phone, base, "sato")
    assert "sato でサインイン中（監査者）" in await phone.inner_text("header")
    for path in ("/admin/", "/admin/participants", "/admin/participants/282014",
                 "/admin/tokens", "/admin/nodes", "/admin/criteria", "/admin/usage",
                 "/admin/audit", "/admin/participants/282014/suspend/confirm"):
        await phone.goto(base + path)
        assert await phone.locator("main form[method=post]").count() == 0, path
        assert await phone.locator("main button.danger, main a.button.danger").count() == 0, path
        assert "監査者として閲覧しています" in await phone.inner_text("main")
        await no_horizontal_scroll(phone, path)
        await check_axe(phone, f"{path} as an auditor at 360 px")
    await phone.goto(base + "/admin/participants")
    await screenshot(phone, "console-participants-360")
    # a POST of the auditor's, with the session's own CSRF token, is still refused
    csrf = await phone.locator("header input[name=csrf_token]").get_attribute("value")
    status = await phone.evaluate(
        """async (csrf) => (await fetch('/admin/participants/282014/certify', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded', 'Accept': 'text/html'},
             body: 'csrf_token=' + encodeURIComponent(csrf)})).status""", csrf)
    assert status == 403
    await phone.goto(base + "/admin/participants/282014")
    assert "認定待ち" in await phone.locator("dl.props").inner_text()
