"""The connector console's agreements and catalog over HTTP, against real connectors: 加古川市
requests 大阪府's dataset from /admin/catalog/ (refused for the wrong purpose, then FINALIZED),
filters its agreements, terminates one; roles, CSRF and a hosted tenant's scope are enforced;
usage is counted against the offer's limits on the provider's page."""

from __future__ import annotations

import asyncio
import html
import json
import re

import aiohttp
import pytest
import yaml

from .browser.conftest import PASSWORD
from .conftest import MeshHarness
from .transfer_fixtures import DATASET_ID, dataset_doc, fetch_cli, write_rows

pytestmark = pytest.mark.integration
KAKOGAWA = "urn:areamesh:org:282103:node:main"
OSAKA = "urn:areamesh:org:270008:node:main"
HTML = {"Accept": "text/html"}


async def account(h: MeshHarness, node: str, name: str, role: str, *extra: str) -> None:
    pw = h.root / f"{name}.pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    rc, _, err = await h.cli("connector", "operator", "add", "--data-dir", str(h.root / node),
                             "--name", name, "--role", role, "--password-file", str(pw), *extra)
    assert rc == 0, err


class Browser:
    """A signed-in console session over plain HTTP, as a browser without JavaScript."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=HTML)
        self.csrf = ""

    async def sign_in(self, name: str) -> Browser:
        async with self.s.get(self.base + "/admin/login") as r:
            token = r.cookies["am_csrf"].value
        async with self.s.post(self.base + "/admin/login", allow_redirects=False,
                               data={"name": name, "password": PASSWORD, "csrf_token": token}) as r:
            assert r.status == 303
        await self.get("/admin/")
        return self

    async def get(self, path: str, **kw) -> tuple[int, str]:
        async with self.s.get(self.base + path, **kw) as r:
            text = await r.text()
        if m := re.search(r'name="csrf_token" value="([^"]+)"', text):
            self.csrf = m[1]
        return r.status, html.unescape(text)

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True) -> tuple[int, str]:
        body = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        async with self.s.post(self.base + path, data=body, allow_redirects=False) as r:
            return r.status, r.headers.get("Location", "") or html.unescape(await r.text())

    async def close(self) -> None:
        await self.s.close()


def base_of(proc) -> str:
    return f"http://127.0.0.1:{proc.ready['http_port']}"


async def two_connectors(h: MeshHarness, accounts: dict[str, list[tuple[str, ...]]]):
    """大阪府 serving ``DATASET_ID`` (transfer_fixtures' offers: purpose 研究, one transfer, a
    record cap) and 加古川市 to consume it, both serving, with console ``accounts`` per node.
    Independent CLI calls run at once: each is a Python start-up."""
    d = str(h.registry_dir)
    for rc, _, err in await asyncio.gather(*(
            h.cli("registry", "participant", "certify", "--data-dir", d, "--id", pid)
            for pid in ("270008", "282103"))):
        assert rc == 0, err
    await h.start_registry()
    await asyncio.gather(h.enrol("osaka", "270008"), h.enrol("kakogawa", "282103"))
    folder = h.root / "feed"
    folder.mkdir()
    write_rows(folder / "population.csv", 1, 200)
    desc = folder / "dataset.yaml"
    desc.write_text(yaml.safe_dump(dataset_doc(folder / "population.csv"), allow_unicode=True),
                    encoding="utf-8")
    rc, _, err = await h.cli("connector", "dataset", "add", "--data-dir", str(h.root / "osaka"),
                             "--file", str(desc))
    assert rc == 0, err
    provider, consumer, *_ = await asyncio.gather(
        h.start_connector("osaka"), h.start_connector("kakogawa"),
        *(account(h, node, *a) for node, rows in accounts.items() for a in rows))
    return provider, consumer


async def test_request_filter_terminate_and_doors(harness: MeshHarness):
    h = harness
    provider, consumer = await two_connectors(h, {
        "kakogawa": [("tanaka", "admin"), ("kansa", "auditor"),
                     ("inami", "admin", "--tenant", "283819")],                 # a hosted tenant
        "osaka": [("osaka-admin", "admin"), ("osaka-tenant", "admin", "--tenant", "283819")]})
    admin, auditor, tenant, provider_admin, provider_tenant = await asyncio.gather(
        Browser(base_of(consumer)).sign_in("tanaka"), Browser(base_of(consumer)).sign_in("kansa"),
        Browser(base_of(consumer)).sign_in("inami"), Browser(base_of(provider)).sign_in("osaka-admin"),
        Browser(base_of(provider)).sign_in("osaka-tenant"))
    try:
        # the consumer finds the dataset in the registry's catalog, over mTLS
        status, page = await admin.get("/admin/catalog/?q=人口")
        assert status == 200 and "大阪府 市区町村別人口（配信）" in page
        assert f"/admin/catalog/{DATASET_ID}" in page
        status, page = await admin.get(f"/admin/catalog/{DATASET_ID}")
        assert status == 200 and "research-use" in page and "one-transfer" in page
        assert "利用目的が次と等しい: <code>研究</code>" in page              # the fields
        assert "研究目的に限り、すべての参加者が利用できます。レコードは合計 150 件まで。" in page  # in words
        assert (await admin.get("/admin/catalog/no-such-dataset"))[0] == 404

        # the wrong purpose: refused, and the agreement's page says which constraint and claim
        status, where = await admin.post(f"/admin/catalog/{DATASET_ID}/request",
                                         {"offer": "research-use", "purpose": "観光"})
        assert status == 303 and where.endswith("?done=requested"), where
        refused = where.split("/admin/agreements/")[1].split("?")[0]
        status, page = await admin.get(where)
        assert status == 200 and "合意は成立しませんでした" in page
        assert "利用目的「観光」は許可された目的「研究」と異なります" in page
        assert "申込みで申告された利用目的" in page and "permissions[0].constraints[0]" in page
        assert f"提供者である相手方（{OSAKA}）が" in page
        status, page_en = await admin.get(f"/admin/agreements/{refused}?lang=en")
        assert f"The provider, the counterparty ({OSAKA}), refused the request at " in page_en
        assert "the purpose declared in the request" in page_en and "Why it ended" in page_en
        await admin.get("/admin/agreements/?lang=ja")
        # the CLI says the same, Japanese first and then English
        rc, out, err = await h.cli("connector", "contract", "explain", "--data-dir",
                                   str(h.root / "kakogawa"), refused)
        assert rc == 0, err
        first = out.splitlines()[0]
        assert first in page and out.index("申告された") < out.index("purpose '観光' is not '研究'")
        rc, out, _ = await h.cli("connector", "contract", "explain", "--data-dir",
                                 str(h.root / "kakogawa"), refused, "--json")
        assert json.loads(out)["failures"][0]["actual"] == "観光"

        # the right purpose: FINALIZED, notarised (the time kept in the row, not asked again)
        status, where = await admin.post(f"/admin/catalog/{DATASET_ID}/request",
                                         {"offer": "one-transfer", "purpose": "研究"})
        agreed = where.split("/admin/agreements/")[1].split("?")[0]
        status, page = await admin.get(where)
        assert status == 200 and "合意が成立しました" in page
        assert "この合意文書のダイジェストと一致します" in page and "レジストリが記録した日時" in page
        assert "署名はすべて検証できました" in page and f"/admin/transfers/?agreement={agreed}" in page
        assert '"purpose": "研究"' in page                        # the signed document, pretty
        assert "研究目的に限り、すべての参加者が利用できます。転送は最大 1 回まで。" in page
        # a bad request is shown on the form, not a 5xx
        status, page = await admin.post(f"/admin/catalog/{DATASET_ID}/request",
                                        {"offer": "nope", "purpose": "研究"})
        assert status == 404 and "申込みを送れませんでした" in page and "nope" in page
        status, page = await admin.post(f"/admin/catalog/{DATASET_ID}/request",
                                        {"offer": "research-use", "purpose": ""})
        assert status == 400 and "利用目的" in page

        # filters and pages
        status, page = await admin.get("/admin/agreements/?state=TERMINATED")
        assert status == 200 and refused[:8] in page and agreed[:8] not in page
        status, page = await admin.get("/admin/agreements/?role=consumer&counterpart=270008")
        assert refused[:8] in page and agreed[:8] in page
        status, page = await admin.get("/admin/agreements/?role=provider")
        assert refused[:8] not in page and "該当する合意はありません" in page
        status, page = await admin.get(f"/admin/agreements/?dataset={DATASET_ID}&state=FINALIZED")
        assert agreed[:8] in page and refused[:8] not in page
        for bad in ("?state=BOGUS", "?role=owner", "?page=0", "?page=x"):
            assert (await admin.get("/admin/agreements/" + bad))[0] == 400, bad
        assert (await admin.get("/admin/agreements/no-such-agreement"))[0] == 404
        async with admin.s.get(admin.base + "/admin/agreements/nope",
                               headers={"Accept": "application/json"}) as r:
            assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"

        # a hosted tenant's account sees neither (404, as for none) and cannot request
        status, page = await tenant.get("/admin/agreements/")
        assert status == 200 and refused[:8] not in page and agreed[:8] not in page
        assert (await tenant.get(f"/admin/agreements/{agreed}"))[0] == 404
        status, page = await tenant.get(f"/admin/catalog/{DATASET_ID}")
        assert status == 200 and "このアカウントでは申し込めません" in page
        assert (await tenant.post(f"/admin/catalog/{DATASET_ID}/request",
                                  {"offer": "research-use", "purpose": "研究"}))[0] == 403
        # on the provider: its own admin sees both; an account of another tenant neither
        status, page = await provider_admin.get("/admin/agreements/?role=provider")
        assert refused[:8] in page and agreed[:8] in page
        status, page = await provider_tenant.get("/admin/agreements/")
        assert agreed[:8] not in page and refused[:8] not in page
        assert (await provider_tenant.get(f"/admin/agreements/{agreed}"))[0] == 404

        # usage against the limit, on the provider's page: 1 of 1 transfer used
        rc, _, err = await fetch_cli(h, agreed, h.root / "got" / "feed.ndjson")
        assert rc == 0, err
        status, page = await provider_admin.get(f"/admin/agreements/{agreed}")
        row = re.search(r"transferCount lteq 1</code>.*?</tr>", page, re.S)[0]
        assert [int(n) for n in re.findall(r'class="num">(\d+)<', row)] == [1, 1, 0], row

        # the auditor reads but cannot terminate; a form without its CSRF token is refused
        assert (await auditor.get(f"/admin/agreements/{agreed}"))[0] == 200
        assert (await auditor.get(f"/admin/agreements/{agreed}/terminate"))[0] == 403
        assert (await auditor.post(f"/admin/agreements/{agreed}/terminate",
                                   {"code": "other"}))[0] == 403
        assert (await admin.get(f"/admin/agreements/{agreed}/terminate"))[0] == 200
        status, page = await admin.post(f"/admin/agreements/{agreed}/terminate",
                                        {"code": "other"}, csrf=False)
        assert status == 403 and "確認用トークン" in page
        assert (await admin.post(f"/admin/agreements/{agreed}/terminate", {"code": "bogus"}))[0] == 400
        rc, out, _ = await h.cli("connector", "contract", "show", "--data-dir",
                                 str(h.root / "kakogawa"), agreed)
        assert json.loads(out)["state"] == "FINALIZED"                   # nothing changed

        status, where = await admin.post(f"/admin/agreements/{agreed}/terminate",
                                         {"code": "purpose_fulfilled", "message": "研究が終わりました"})
        assert status == 303 and where.endswith("?done=terminated")
        status, page = await admin.get(where)
        assert "合意を終了し、相手方に通知しました" in page
        assert f"このコネクタ（{KAKOGAWA}）が" in page and "目的達成（purpose_fulfilled）" in page
        # the provider was told: its page explains who ended it, with the message
        status, page = await provider_admin.get(f"/admin/agreements/{agreed}")
        assert f"相手方（{KAKOGAWA}）が" in page and "研究が終わりました" in page
    finally:
        for b in (admin, auditor, tenant, provider_admin, provider_tenant):
            await b.close()
