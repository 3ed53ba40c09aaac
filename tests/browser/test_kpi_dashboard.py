"""The KPI dashboard (/admin/kpi) in a real browser: an admin defines an outcome indicator,
enters a value, uploads a CSV file with a bad row (named next to the field, nothing stored) and
then a right one; the output charts are drawn by uPlot and each has its table. axe-core runs on
the page (with its forms, with an import error, and for an auditor at 360 px); screenshots go to
build/screenshots/."""

from __future__ import annotations

from ..conftest import MeshHarness
from ..security.test_http_auth import record_usage
from .conftest import add_operator, check_axe, no_horizontal_scroll, screenshot, sign_in
from .test_operator_console import script_errors


async def test_kpi_dashboard(running: MeshHarness, page, tmp_path):
    h = running
    base = h.http_url
    await add_operator(h, "yamada", "admin")
    record_usage(h, [("270008", "282014", 125_000), ("282014", "282103", 9_800)])  # 2026-11
    await sign_in(page, base, "yamada")
    await page.get_by_role("link", name="KPI", exact=True).click()
    assert page.url == f"{base}/admin/kpi"
    await page.fill("#f-from", "2026-06")
    await page.fill("#f-to", "2026-12")
    await page.get_by_role("button", name="表示する").click()
    assert "from=2026-06" in page.url and "to=2026-12" in page.url

    await page.fill("#f-id", "tourist_visits")
    await page.fill("#f-name_ja", "観光入込客数")
    await page.fill("#f-name_en", "Tourist visits")
    await page.fill("#f-unit", "人")
    await page.fill("#f-target", "150000")
    await page.fill("#f-target_date", "2027-03-31")
    await page.get_by_role("button", name="指標を保存する").click()
    assert "アウトカム指標を保存しました" in await page.locator(".alert.ok").inner_text()

    await page.goto(f"{base}/admin/kpi?from=2026-06&to=2026-12")
    await page.select_option("#f-indicator", "tourist_visits")
    await page.fill("#f-period", "2026-06")
    await page.fill("#f-value", "100000")
    await page.get_by_role("button", name="値を保存する").click()
    assert "指標の値を保存しました" in await page.locator(".alert.ok").inner_text()

    await page.goto(f"{base}/admin/kpi?from=2026-06&to=2026-12")
    bad = tmp_path / "bad.csv"
    bad.write_bytes("指標ID,期間,値\ntourist_visits,2026-11,125000\ntourist_visits,2026-12,たくさん\n"
                    .encode("cp932"))
    await page.set_input_files("#f-file", str(bad))
    await page.get_by_role("button", name="取り込む").click()
    error = await page.locator("#f-file-error").inner_text()
    assert "3行目" in error and "たくさん" in error and "何も取り込んでいません" in error
    assert await page.locator("#f-file").get_attribute("aria-invalid") == "true"
    await check_axe(page, "KPI import with a bad row")
    good = tmp_path / "good.csv"
    good.write_bytes("指標ID,期間,値\ntourist_visits,2026-11,125000\n".encode("cp932"))
    await page.set_input_files("#f-file", str(good))
    await page.get_by_role("button", name="取り込む").click()
    assert "取り込みました" in await page.locator(".alert.ok").inner_text()

    await page.goto(f"{base}/admin/kpi?from=2026-06&to=2026-12")
    outcomes = await page.locator("table.kpi-outcomes").inner_text()
    assert "観光入込客数" in outcomes and "50%" in outcomes and "150,000" in outcomes
    await page.locator("#kpi-records canvas").wait_for()          # uPlot drew the charts
    assert await page.locator(".kpi-card canvas").count() >= 5
    for group in ("services", "api-calls", "consents", "identity"):    # every output has a chart
        assert await page.locator(f"#kpi-{group} canvas").count() == 1, group
    records = page.locator("section.kpi-card", has=page.locator("#kpi-records"))
    assert "134,800" in await records.locator("table.kpi-table").inner_text()
    assert await page.locator("#kpi-records").get_attribute("aria-hidden") == "true"
    await check_axe(page, "KPI dashboard")
    await screenshot(page, "console-kpi")
    assert not script_errors(page), page.console_errors


async def test_kpi_dashboard_for_an_auditor_on_a_phone(running: MeshHarness, phone):
    h = running
    await add_operator(h, "sato", "auditor")
    await sign_in(phone, h.http_url, "sato")
    await phone.goto(f"{h.http_url}/admin/kpi")
    assert await phone.locator("main form[method=post]").count() == 0
    await phone.locator(".kpi-card canvas").first.wait_for()
    await no_horizontal_scroll(phone, "/admin/kpi")
    await check_axe(phone, "KPI dashboard as an auditor at 360 px")
    await screenshot(phone, "console-kpi-360")
