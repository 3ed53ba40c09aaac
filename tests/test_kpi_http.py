"""The KPI dashboard over HTTP and the CLI, against a real registry process: the console page
and its forms (define, enter, CSV upload with bad rows named), the CSV download, GET /api/v1/kpi
behind its door (a participant's key gets 403), and ``areamesh registry kpi import/export``."""

from __future__ import annotations

import codecs
import csv
import io
import re
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from .browser.conftest import add_operator
from .conftest import MeshHarness, bearer, wait_for
from .security.test_http_auth import basic, call, participant_key, record_usage
from .test_console_pages import HTML, UNTRANSLATED, Browser

pytestmark = pytest.mark.integration
PASSWORD = "correct horse battery staple"
THIS_MONTH = f"{datetime.now(timezone(timedelta(hours=9))):%Y-%m}"


@pytest.fixture
async def admin(running: MeshHarness):
    await add_operator(running, "yamada", "admin")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        b = Browser(running.http_url, s)
        await b.sign_in("yamada")
        yield b


async def upload(b: Browser, data: bytes, name: str = "values.csv") -> tuple[int, str, str]:
    form = aiohttp.FormData()
    form.add_field("csrf_token", b.csrf)
    form.add_field("file", data, filename=name, content_type="text/csv")
    async with b.s.post(b.base + "/admin/kpi/import", data=form, headers=HTML,
                        allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


DEFINE = {"id": "tourist_visits", "name_ja": "観光入込客数", "name_en": "Tourist visits",
          "unit": "人", "target": "150000", "target_date": "2027-03-31", "direction": "higher"}


async def test_console_page_forms_import_and_export(running: MeshHarness, admin: Browser):
    record_usage(running, [("270008", "282014", 1234)])             # 2026-11-10
    status, page = await admin.get("/admin/kpi?from=2026-10&to=2026-12")
    assert status == 200 and not UNTRANSLATED.search(page), UNTRANSLATED.search(page)
    assert "<h1>KPI（アウトプット指標とアウトカム指標）</h1>" in page
    assert "アウトカム指標はまだ定義されていません" in page
    assert 'aria-current="page">KPI</a>' in page
    # each chart has its table, with the same figures; records of November
    data = re.search(r"id=\"kpi-records\" class=\"chart\" data-kpi='([^']+)'", page).group(1)
    assert "[0, 1234, 0]" in data or "[0,1234,0]" in data
    assert "<caption>提供レコード数（月間） （月別）</caption>" in page or \
        "提供レコード数（月間）（月別）" in page
    assert re.search(r"<th scope=\"row\">2026-11</th><td class=\"num\">1,234</td>", page)
    # every group has its chart and table, API calls and consents too; the services' rule said
    for group in ("services", "api-calls", "consents", "identity"):
        assert f'id="kpi-{group}" class="chart"' in page, group
    assert "登録した参加者（運営主体）がその月末の時点で認定済み" in page
    assert "<caption>API呼び出し数（月間）（月別）</caption>" in page

    # define: a bad id first (the form keeps what was typed), then the right one
    status, page, _ = await admin.post("/admin/kpi/outcomes", {**DEFINE, "id": "Bad Id"})
    assert status == 400 and "指標IDは半角英小文字" in page and 'value="観光入込客数"' in page
    status, _, location = await admin.post("/admin/kpi/outcomes", DEFINE)
    assert (status, location) == (303, "/admin/kpi?done=kpi_defined")
    status, _, location = await admin.post("/admin/kpi/values", {
        "indicator": "tourist_visits", "period": "2026-10", "value": "100,000"})
    assert (status, location) == (303, "/admin/kpi?done=kpi_value_saved")
    status, page, _ = await admin.post("/admin/kpi/values", {
        "indicator": "tourist_visits", "period": "2026-13", "value": "1"})
    assert status == 400 and "YYYY-MM" in page

    # a CSV with bad rows: each named, nothing stored; then a Shift_JIS file that is right
    bad = "indicator,period,value\ntourist_visits,2026-11,1\nnope,2026-11,1\ntourist_visits,2026-12,x\n"
    status, page, _ = await upload(admin, bad.encode())
    assert status == 400
    assert "3行目" in page and "指標 &#39;nope&#39; は定義されていません" in page
    assert "4行目" in page and "値 &#39;x&#39; は数値ではありません" in page
    assert "何も取り込んでいません" in page
    good = "指標ID,期間,値\r\ntourist_visits,2026-11,125000\r\n".encode("cp932")
    status, _, location = await upload(admin, good, "sjis.csv")
    assert (status, location) == (303, "/admin/kpi?done=kpi_imported")
    status, page = await admin.get("/admin/kpi?from=2026-10&to=2026-12")
    assert "CSVファイルの値を取り込みました" not in page                  # no done= in this URL
    assert "観光入込客数" in page and "<progress max=\"100\" value=\"50\"" in page   # 100k→125k of 150k

    async with admin.s.get(admin.base + "/admin/kpi/export.csv?from=2026-10&to=2026-12") as r:
        assert r.status == 200 and r.content_type == "text/csv"
        assert 'filename="kpi_2026-10_2026-12.csv"' in r.headers["Content-Disposition"]
        body = await r.read()
    assert body.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(body[3:].decode())))
    assert rows[0][-3:] == ["2026-10", "2026-11", "2026-12"]
    by_key = {r[1]: r for r in rows[1:]}
    assert by_key["records"][-3:] == ["0", "1234", "0"]
    assert by_key["tourist_visits"][-3:] == ["100000", "125000", ""]

    # the audit log has each change, the refusals too
    status, page = await admin.get("/admin/audit")
    for action in ("kpi.define", "kpi.value", "kpi.import", "kpi_import_rejected"):
        assert action in page, action


async def test_auditor_sees_the_dashboard_but_no_forms(running: MeshHarness):
    await add_operator(running, "sato", "auditor")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        auditor = Browser(running.http_url, s)
        await auditor.sign_in("sato")
        status, page = await auditor.get("/admin/kpi")
        assert status == 200
        assert re.findall(r'<form method="post" action="([^"]+)"', page) == ["/admin/logout"]
        status, page, _ = await auditor.post("/admin/kpi/outcomes", DEFINE)
        assert status == 403
        status, _ = await auditor.get("/admin/kpi/export.csv")
        assert status == 200


async def test_api_doors_and_report(running: MeshHarness):
    h = running
    await add_operator(h, "sato", "auditor")
    url = f"{h.http_url}/api/v1/kpi?to=2026-12&months=3"
    status, body = await call("GET", url)
    assert status == 401
    key = await participant_key(h, "282014")
    status, body = await call("GET", url, bearer(key))
    assert status == 403 and body["error"]["code"] == "forbidden"
    for page_path in ("/admin/kpi", "/admin/kpi/export.csv"):
        status, _ = await call("GET", h.http_url + page_path, bearer(key))
        assert status == 403, page_path
    status, body = await call("GET", url, basic("sato", PASSWORD))
    assert status == 200 and body["months"] == ["2026-10", "2026-11", "2026-12"]
    status, body = await call("GET", f"{h.http_url}/api/v1/kpi?months=1",
                              basic("sato", PASSWORD))
    keys = {s["key"]: s for s in body["outputs"]}
    assert keys["participants.total"]["values"] == [3]          # the harness added them today
    assert keys["participants.total"]["measure"] == "stock" and keys["records"]["measure"] == "flow"
    assert body["outcomes"] == []
    for query in ("months=0", "months=61", "to=2026-13", "to=2026"):
        status, body = await call("GET", f"{h.http_url}/api/v1/kpi?{query}", basic("sato", PASSWORD))
        assert status == 400, query
    status, body = await call("GET", f"{h.http_url}/api/v1/kpi?to=", basic("sato", PASSWORD))
    assert status == 400 and body["error"]["code"] == "invalid_period"
    status, body = await call("GET", f"{h.http_url}/api/v1/kpi", basic("sato", PASSWORD))
    assert status == 200 and len(body["months"]) == 12 and body["months"][-1] == THIS_MONTH

    # the calls above (the refused ones too) reach the figures once the counter has flushed
    async def api_calls() -> int:
        _, body = await call("GET", f"{h.http_url}/api/v1/kpi?months=1", basic("sato", PASSWORD))
        return next(s for s in body["outputs"] if s["key"] == "api_calls")["values"][0] >= 10

    await wait_for(api_calls, timeout=15, interval=0.5, what="API calls in the KPI report")


async def test_cli_define_import_and_export(running: MeshHarness):
    h = running
    d = str(h.registry_dir)
    rc, out, err = await h.cli("registry", "kpi", "define", "--data-dir", d, "--id", "wait_minutes",
                               "--name-ja", "窓口の待ち時間", "--name-en", "Waiting time", "--unit", "分",
                               "--target", "10", "--target-date", "2027-03-31", "--direction", "lower")
    assert rc == 0, err
    bad = h.root / "bad.csv"
    bad.write_bytes("指標ID,期間,値\nwait_minutes,2026-10,30\nwait_minutes,2026-10,25\n".encode("cp932"))
    rc, out, err = await h.cli("registry", "kpi", "import", "--data-dir", d, "--file", str(bad))
    assert rc == 2 and "row 3:" in err and "2 行目にもあります" in err, err
    good = h.root / "good.csv"
    good.write_text("indicator,period,value\nwait_minutes,2026-10,30\nwait_minutes,2026-12,20\n",
                    encoding="utf-8")
    rc, out, err = await h.cli("registry", "kpi", "import", "--data-dir", d, "--file", str(good))
    assert rc == 0 and "imported 2 values" in out, err
    target = h.root / "kpi.csv"
    rc, out, err = await h.cli("registry", "kpi", "export", "--data-dir", d, "--out", str(target),
                               "--from", "2026-10", "--to", "2026-12")
    assert rc == 0, err
    body = target.read_bytes()
    assert body.startswith(codecs.BOM_UTF8)
    rows = {r[1]: r for r in csv.reader(io.StringIO(body[3:].decode()))}
    assert rows["wait_minutes"][5:] == ["entered", "lower", "10", "2027-03-31", "30", "", "20"]
    rc, out, err = await h.cli("registry", "kpi", "export", "--data-dir", d, "--out", "-")
    assert rc == 0, err
    rows = {r[1]: r for r in csv.reader(io.StringIO(out.lstrip("\ufeff")))}
    assert rows["indicator"][-1] == THIS_MONTH and rows["participants.municipality"][-1] == "2"
    rc, out, err = await h.cli("registry", "kpi", "export", "--data-dir", d, "--out", str(target),
                               "--from", "2026-10", "--to", "2032-01")
    assert rc == 2 and "60" in err
