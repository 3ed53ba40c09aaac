"""``areamesh registry billing run`` against a real registry, and what the run leaves behind:
CSV (UTF-8 with BOM) and xlsx files with exactly the documented headers, the run stored and
shown by the console and the API, a re-run replacing it with a note in the audit log, and a
participant reading only its own statement."""

from __future__ import annotations

import csv
import io
import json
import re

import aiohttp
import pytest
from openpyxl import load_workbook

from registry.billing.export import STATEMENT_HEADER, SUMMARY_HEADER

from .conftest import MeshHarness
from .registry_sql import registry_sql
from .security.test_http_auth import add_operator, call, cli_ok, participant_key, record_usage
from .test_console_pages import HTML, UNTRANSLATED, Browser

pytestmark = pytest.mark.integration

RULES = """
title: 2026年11月 テスト按分
period: 2026-11
participants: certified_local_governments
population: {values: {"270008": 8837685, "282014": 530495, "282103": 260878}}
items:
  - id: shared
    name: 共用費
    kind: fixed
    amount: 10000
    method: equal
    cite: "seed 002 §4-1 等分負担"
  - id: platform
    name: 基盤運用費
    kind: fixed
    amount: 3000000
    method: population
    cap: 0.6
    discount: {basis: records_provided, rate: 0.3}
  - id: transfers
    name: 転送量
    kind: variable
    amount: 500001
    method: usage
    basis: records_received
"""


async def _certify(h: MeshHarness) -> None:
    for pid in ("270008", "282014", "282103"):
        await cli_ok(h, "registry", "participant", "certify", "--data-dir", str(h.registry_dir),
                     "--id", pid)


async def test_run_writes_csv_and_xlsx_stores_the_run_and_audits_a_rerun(running: MeshHarness):
    h = running
    await _certify(h)
    record_usage(h, [("282014", "270008", 1200), ("282103", "270008", 300),
                     ("270008", "282103", 50)])
    rules = h.root / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    out = h.root / "out"
    text = await cli_ok(h, "registry", "billing", "run", "--data-dir", str(h.registry_dir),
                        "--period", "2026-11", "--rules", str(rules), "--out", str(out))
    assert "3,510,001円" in text

    raw = (out / "billing-2026-11-summary.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                      # BOM: Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == SUMMARY_HEADER
    body = rows[1:4]
    assert [r[0] for r in body] == ["270008", "282014", "282103"]
    assert sum(int(r[7]) for r in body) == 3_510_001 and rows[4][0] == "合計"
    assert rows[4][7] == "3510001"
    statement = list(csv.reader(io.StringIO(
        (out / "billing-2026-11-statement-282014.csv").read_text(encoding="utf-8-sig"))))
    assert statement[0] == STATEMENT_HEADER
    assert [r[0] for r in statement[1:5]] == ["shared", "platform", "transfers", "合計"]
    assert any(r[:1] == ["端数処理"] and "参加者IDの昇順" in r[1] for r in statement)
    shared = {r[0]: r for r in rows[1:4]}
    assert int(shared["270008"][2]) >= 3334                      # the extra yen of 10,000 / 3

    book = load_workbook(out / "billing-2026-11.xlsx")
    assert book.sheetnames == ["集計", "270008", "282014", "282103"]
    assert [c.value for c in book["集計"][1]] == SUMMARY_HEADER
    assert [c.value for c in book["282014"][1]] == STATEMENT_HEADER
    assert book["集計"].cell(5, 8).value == 3_510_001

    # the run is stored; a re-run replaces it and the audit log says so
    await cli_ok(h, "registry", "billing", "run", "--data-dir", str(h.registry_dir),
                 "--period", "2026-11", "--rules", str(rules), "--out", str(out))
    runs = registry_sql(h.registry_dir, "SELECT period, total FROM billing_runs")
    audit = registry_sql(h.registry_dir, "SELECT action, target, details, outcome FROM admin_audit "
                                         "WHERE action = 'billing.run' ORDER BY seq")
    assert runs == [("2026-11", 3_510_001)]
    assert [(a, t, o) for a, t, _, o in audit] == [("billing.run", "2026-11", "ok")] * 2
    first, second = (json.loads(d) for _, _, d, _ in audit)
    assert first["replaced"] is None
    assert second["replaced"]["rules_digest"] == first["rules_digest"]

    # a rule file for another period is refused with its key path
    rc, _, err = await h.cli("registry", "billing", "run", "--data-dir", str(h.registry_dir),
                             "--period", "2026-12", "--rules", str(rules), "--out", str(out))
    assert rc == 2 and "period:" in err and "ルールファイルは 2026-11 用です" in err

    # --- the API: operators see everyone, a participant only its own statement
    op = await h.operator_headers("auditor")
    status, run = await call("GET", h.http_url + "/api/v1/billing/2026-11", op)
    assert status == 200 and run["totals"]["amount"] == 3_510_001
    assert len(run["statements"]) == 3
    status, listed = await call("GET", h.http_url + "/api/v1/billing", op)
    assert status == 200 and listed["runs"][0]["period"] == "2026-11"
    himeji = {"Authorization": f"Bearer {await participant_key(h, '282014')}"}
    status, body = await call("GET", h.http_url + "/api/v1/billing/2026-11", himeji)
    assert status == 403
    status, own = await call("GET", h.http_url + "/api/v1/billing/2026-11/statement", himeji)
    assert status == 200 and own["statement"]["participant"] == "282014"
    assert "statements" not in own and "282103" not in json.dumps(own["statement"])
    status, body = await call(
        "GET", h.http_url + "/api/v1/billing/2026-11/statement?participant=282103", himeji)
    assert status == 403 and body["error"]["code"] == "not_own_statement"
    status, body = await call("GET", h.http_url + "/api/v1/billing/2026-10/statement", himeji)
    assert status == 404
    status, body = await call(
        "GET", h.http_url + "/api/v1/billing/2026-11/statement?participant=282103", op)
    assert status == 200 and body["statement"]["participant"] == "282103"
    status, _ = await call("GET", h.http_url + "/api/v1/billing/2026-11/statement")
    assert status == 401


async def test_console_pages_show_runs_and_an_admin_runs_an_upload(running: MeshHarness):
    h = running
    await _certify(h)
    record_usage(h, [("282014", "270008", 1200)])
    await add_operator(h, "yamada", "admin")
    await add_operator(h, "sato", "auditor")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        admin = Browser(h.http_url, s)
        await admin.sign_in("yamada")
        status, page = await admin.get("/admin/billing")
        assert status == 200 and "まだ実行された期間はありません" in page
        assert 'enctype="multipart/form-data"' in page

        async def upload(text: str, period: str = "2026-11") -> tuple[int, str, str]:
            form = aiohttp.FormData()
            form.add_field("csrf_token", admin.csrf)
            form.add_field("period", period)
            form.add_field("rules", text.encode(), filename="rules.yaml",
                           content_type="application/yaml")
            async with s.post(h.http_url + "/admin/billing", data=form, headers=HTML,
                              allow_redirects=False) as r:
                return r.status, await r.text(), r.headers.get("Location", "")

        status, page, _ = await upload(RULES.replace("kind: variable", "kind: varible"))
        assert status == 400 and "items[2].kind" in page and "次のいずれかを指定してください" in page
        status, _, location = await upload(RULES)
        assert (status, location) == (303, "/admin/billing/2026-11?done=billing_run")
        status, page = await admin.get(location)
        assert status == 200 and "費用按分を実行し" in page
        assert "3,510,001" in page and "姫路市" in page and "最大剰余法" in page
        data = json.loads(re.search(r"data-bars='([^']+)'", page).group(1)
                          .replace("&#34;", '"'))
        assert data["labels"] == ["大阪府", "姫路市", "加古川市"]
        assert sum(data["fixed"]) == 3_010_000 and sum(data["variable"]) == 500_001
        assert not UNTRANSLATED.search(page)
        status, page = await admin.get("/admin/billing/2026-11/282014")
        assert status == 200 and "基盤運用費" in page and "人口比按分" in page
        status, _ = await admin.get("/admin/billing/2026-11/282999")
        assert status == 404
        async with s.get(h.http_url + "/admin/billing/2026-11/billing.xlsx") as r:
            assert r.status == 200
            book = load_workbook(io.BytesIO(await r.read()))
        assert [c.value for c in book["集計"][1]] == SUMMARY_HEADER
        status, page = await admin.get("/admin/billing?lang=en")
        assert status == 200 and "<h1>Cost allocation</h1>" in page and "2026-11" in page
        assert not UNTRANSLATED.search(page)

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        auditor = Browser(h.http_url, s)
        await auditor.sign_in("sato")
        status, page = await auditor.get("/admin/billing")
        assert status == 200 and "2026-11" in page and 'name="rules"' not in page
        status, _, _ = await auditor.post("/admin/billing", {"period": "2026-11"})
        assert status == 403
