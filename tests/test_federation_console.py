"""The console page /admin/federation against a real registry: an admin adds the other mesh's
document by upload and removes it after a confirmation page, both audit-logged with the operator;
a bad document is refused on the form; an auditor sees the list and no forms, and cannot post."""

from __future__ import annotations

import json

import aiohttp
import pytest

from .browser.conftest import add_operator
from .federation_fixtures import NamedMesh, stop
from .test_console_pages import HTML, UNTRANSLATED, Browser

pytestmark = pytest.mark.integration


@pytest.fixture
async def registry(tmp_path):
    hyogo = NamedMesh(tmp_path / "hyogo", "hyogo", "兵庫県")
    osaka = NamedMesh(tmp_path / "osaka", "osaka", "大阪府")
    await hyogo.init_registry()
    await osaka.init_registry()
    await hyogo.start_registry()
    document = await osaka.export_to("127.0.0.1:17701")
    try:
        yield hyogo, document
    finally:
        await stop(hyogo)


async def _upload(b: Browser, data: bytes) -> tuple[int, str, str]:
    form = aiohttp.FormData()
    form.add_field("csrf_token", b.csrf)
    form.add_field("document", data, filename="osaka.json", content_type="application/json")
    async with b.s.post(b.base + "/admin/federation", data=form, headers=HTML,
                        allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


async def test_add_and_remove_in_the_console(registry):
    hyogo, document = registry
    await add_operator(hyogo, "yamada", "admin")
    await add_operator(hyogo, "kansa", "auditor")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        admin = Browser(hyogo.http_url, s)
        await admin.sign_in("yamada")
        status, page = await admin.get("/admin/federation")
        assert status == 200 and "hyogo" in page and hyogo.ca().fingerprint in page
        assert "連携先はありません" in page and not UNTRANSLATED.search(page)

        doc = json.loads(document.read_text())
        doc["name"] = "偽の大阪府"      # altered after signing
        status, page, _ = await _upload(admin, json.dumps(doc).encode())
        assert status == 400 and "連携文書の署名を検証できません" in page
        assert 'aria-invalid="true"' in page

        status, _page, location = await _upload(admin, document.read_bytes())
        assert status == 303 and location.endswith("done=federation_added"), _page
        status, page = await admin.get("/admin/federation")
        assert "osaka" in page and "大阪府" in page and "相手の登録待ち" in page
        status, page, _ = await _upload(admin, document.read_bytes())
        assert status == 409 and "既に登録されています" in page

        status, page = await admin.get("/admin/federation/osaka/remove")
        assert status == 200 and "連携を削除する" in page
        status, _page, location = await admin.post("/admin/federation/osaka/remove", {})
        assert status == 303 and location.endswith("done=federation_removed")
        status, page = await admin.get("/admin/federation")
        assert "連携先はありません" in page
        status, _page, _ = await admin.post("/admin/federation/osaka/remove", {})
        assert status == 404

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        auditor = Browser(hyogo.http_url, s)
        await auditor.sign_in("kansa")
        status, page = await auditor.get("/admin/federation")
        assert status == 200 and 'action="/admin/federation"' not in page
        status, _page, _ = await _upload(auditor, document.read_bytes())
        assert status == 403

    rc, out, err = await hyogo.cli("registry", "audit-log", "list", "--data-dir",
                                   str(hyogo.registry_dir), "--json")
    assert rc == 0, err
    entries = [json.loads(line) for line in out.splitlines()]
    fed = [(e["action"], e["actor"], e["outcome"]) for e in entries
           if e["action"].startswith("federation.")]
    assert ("federation.add", "yamada", "ok") in fed
    assert ("federation.add", "yamada", "federation_signature_invalid") in fed
    assert ("federation.add", "yamada", "federation_duplicate") in fed
    assert ("federation.remove", "yamada", "ok") in fed
