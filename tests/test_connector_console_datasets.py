"""The connector console's datasets and offers over HTTP against a real connector and registry:
field errors (400, the field named, the input kept), CSRF, roles, tenant isolation (URL
tampering included), uploads, the source check and preview, publish, withdraw and offers."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest
import yaml

from areamesh.demo_catalog import TENANT
from mesh.standards import DEFAULT_EDITION, get_standard

from .browser.conftest import PASSWORD
from .conftest import MeshHarness, http_json

pytestmark = pytest.mark.integration
HTML = {"Accept": "text/html"}
MAPPING = """version: 1
columns:
  - {to: 名称, from: 名称, required: true}
  - {to: 緯度, from: 緯度, cast: float}
  - {to: 経度, from: 経度, cast: float}
"""


def write_csv(path, header: str = "名称,住所,緯度,経度") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [header, "姫路市役所,姫路市安田四丁目1番地,34.8153,134.6853",
            "姫路城管理事務所,姫路市本町68番地,北緯34度,134.6939",
            "好古園,姫路市本町68番地,34.8372,134.6905"]
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode("cp932"))


async def account(h: MeshHarness, node: str, name: str, role: str, *extra: str) -> None:
    pw = h.root / f"{name}.pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    rc, _, err = await h.cli("connector", "operator", "add", "--data-dir", str(h.root / node),
                             "--name", name, "--role", role, "--password-file", str(pw), *extra)
    assert rc == 0, err


async def sign_in(base: str, name: str) -> aiohttp.ClientSession:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True), headers=HTML)
    async with s.get(base + "/admin/login") as r:
        token = r.cookies["am_csrf"].value
    async with s.post(base + "/admin/login", allow_redirects=False,
                      data={"name": name, "password": PASSWORD, "csrf_token": token}) as r:
        assert r.status == 303
    return s


async def csrf(s: aiohttp.ClientSession, base: str) -> str:
    async with s.get(base + "/admin/datasets/") as r:
        return re.search(r'name="csrf_token" value="([^"]+)"', await r.text())[1]


def form(ident: str, **changes: str) -> dict[str, str]:
    values = {"id": ident, "title_ja": "姫路市 AED設置箇所（テスト）", "theme_1": "on",
              "keywords": "AED, 救命", "schema": "名称\n住所\n緯度:number\n経度:number",
              "classification": "non_personal", "management": "external",
              "update_frequency": "monthly", "spatial": "282103", "license": "CC-BY-4.0",
              "access": "open", "source_adapter": "csv", "source_path": "aed.csv",
              "source_encoding": "cp932", "mapping": MAPPING}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


async def post(s: aiohttp.ClientSession, url: str, data, token: str | None) -> tuple[int, str, str]:
    if token is not None and isinstance(data, dict):
        data = {**data, "csrf_token": token}
    async with s.post(url, data=data, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


@pytest.fixture
async def mesh(harness: MeshHarness):
    """加古川市's connector, hosting 稲美町 (283819); both certified publishers."""
    tenant, name, kind, host = TENANT
    rc, _, err = await harness.cli("registry", "participant", "certify", "--data-dir",
                                   str(harness.registry_dir), "--id", "282103")
    assert rc == 0, err
    for args in (("add", "--id", tenant, "--name", name, "--type", kind),
                 ("certify", "--id", tenant), ("host", "--tenant", tenant, "--host", host)):
        rc, _, err = await harness.cli("registry", "participant", args[0], "--data-dir",
                                       str(harness.registry_dir), *args[1:])
        assert rc == 0, err
    await harness.start_registry()
    await harness.enrol("kakogawa", "282103")
    node = await harness.start_connector("kakogawa")
    await account(harness, "kakogawa", "tanaka", "admin")
    await account(harness, "kakogawa", "kansa", "auditor")
    await account(harness, "kakogawa", "inami", "admin", "--tenant", "283819")
    return harness, f"http://127.0.0.1:{node.ready['http_port']}"


async def test_form_errors_preview_publish_withdraw_and_roles(mesh):
    h, base = mesh
    files = h.root / "kakogawa" / "publishers" / "282103" / "files"
    write_csv(files / "aed.csv", header="名称,住所,緯度,経渡")          # a wrong header
    admin, auditor = await sign_in(base, "tanaka"), await sign_in(base, "kansa")
    try:
        token = await csrf(admin, base)
        # every problem next to its field, status 400, what was typed kept
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     form("kakogawa-aed", title_ja="", theme_1=None,
                                          spatial="282102", license="", keywords="救命"), token)
        assert status == 400
        for name in ("title_ja", "themes", "spatial", "license"):
            assert f'id="f-{name}-error"' in text, name
        assert 'id="f-spatial" name="spatial" type="text" value="282102"' in text
        assert 'value="救命"' in text
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     form("kakogawa-aed", source_path="../../../tls/node.key"), token)
        assert status == 400 and 'id="f-source_path-error"' in text
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     form("kakogawa-aed", source_encoding="latin-1"), token)
        assert status == 400 and 'id="f-source_encoding-error"' in text
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     form("kakogawa-aed", mapping="version: 2\ncolumns: []"), token)
        assert status == 400 and 'id="f-mapping-error"' in text
        # no CSRF token, or an auditor: refused, nothing saved
        assert (await post(admin, base + "/admin/datasets/new", form("kakogawa-aed"), None))[0] == 403
        auditor_token = await csrf(auditor, base)
        assert (await post(auditor, base + "/admin/datasets/new", form("kakogawa-aed"),
                           auditor_token))[0] == 403
        assert not (files.parent / "drafts").exists()

        status, _, location = await post(admin, base + "/admin/datasets/new", form("kakogawa-aed"), token)
        assert status == 303 and location.startswith("/admin/datasets/kakogawa-aed/preview")
        async with admin.get(base + "/admin/datasets/kakogawa-aed/preview") as r:
            text = await r.text()
        assert "列「経渡」は「経度」という名前のはずです" in text
        assert "入力に列がありません: 経度" in text                    # the mapping cannot run
        assert (await post(admin, base + "/admin/datasets/kakogawa-aed/publish", {}, token))[0] == 400
        async with admin.get(base + "/admin/datasets/") as r:
            assert "未公開（このコネクタのみ）" in await r.text()

        write_csv(files / "aed.csv")                                        # the file fixed
        async with auditor.get(base + "/admin/datasets/kakogawa-aed/preview") as r:
            text = await r.text()
        assert r.status == 200 and "公開できます" in text
        assert "除外される行（1 件）" in text and "北緯34度" in text         # the reject and why
        assert text.count('<tr><th scope="row">') == 2 + 1                  # 2 rows kept, 1 reject
        assert (await post(auditor, base + "/admin/datasets/kakogawa-aed/publish", {},
                           auditor_token))[0] == 403
        status, _, location = await post(admin, base + "/admin/datasets/kakogawa-aed/publish", {}, token)
        assert status == 303, _
        found = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        assert found["title"]["ja"] == "姫路市 AED設置箇所（テスト）"
        async with admin.get(base + "/admin/datasets/") as r:
            text = await r.text()
        assert "kakogawa-aed" in text and "公開中" in text

        assert (await post(auditor, base + "/admin/datasets/kakogawa-aed/refresh", {},
                           auditor_token))[0] == 403
        status, _, location = await post(admin, base + "/admin/datasets/kakogawa-aed/refresh", {}, token)
        assert status == 303 and location.endswith("?done=refreshed")
        generation = files.parent / "store" / "kakogawa-aed" / "generation.json"
        assert generation.exists()                              # the CLI's refresh, marked changed
        async with admin.get(base + "/admin/datasets/kakogawa-aed/withdraw") as r:
            assert r.status == 200 and "取り下げますか" in await r.text()
        assert (await post(admin, base + "/admin/datasets/kakogawa-aed/withdraw", {}, None))[0] == 403
        status, _, location = await post(admin, base + "/admin/datasets/kakogawa-aed/withdraw", {}, token)
        assert status == 303 and location == "/admin/datasets/?done=withdrawn"
        async with admin.get(base + "/admin/datasets/") as r:
            assert "取り下げ済み" in await r.text()
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{h.http_url}/api/v1/datasets", params={"q": "AED設置箇所"}) as r:
                assert (await r.json())["total"] == 0
    finally:
        await admin.close()
        await auditor.close()


async def test_a_tenant_account_sees_and_changes_only_its_tenant(mesh):
    h, base = mesh
    write_csv(h.root / "kakogawa" / "publishers" / "282103" / "files" / "aed.csv")
    write_csv(h.root / "kakogawa" / "publishers" / "283819" / "files" / "aed.csv")
    admin, inami = await sign_in(base, "tanaka"), await sign_in(base, "inami")
    try:
        token = await csrf(admin, base)
        assert (await post(admin, base + "/admin/datasets/new", form("kakogawa-aed"), token))[0] == 303
        assert (await post(admin, base + "/admin/datasets/kakogawa-aed/publish", {}, token))[0] == 303
        t2 = await csrf(inami, base)
        # the publisher field is the account's tenant, whatever the form says
        status, _, _ = await post(inami, base + "/admin/datasets/new",
                                  form("inami-aed", publisher="282103", spatial="283819"), t2)
        assert status == 303
        assert (h.root / "kakogawa" / "publishers" / "283819" / "drafts" / "inami-aed.json").exists()
        assert (await post(inami, base + "/admin/datasets/inami-aed/publish", {}, t2))[0] == 303
        async with inami.get(base + "/admin/datasets/") as r:
            text = await r.text()
        assert "inami-aed" in text and "kakogawa-aed" not in text
        async with admin.get(base + "/admin/datasets/") as r:
            text = await r.text()
        assert "inami-aed" in text and "kakogawa-aed" in text and "共同利用" in text
        # another publisher's dataset: not found through any URL
        for path in ("", "/preview", "/edit", "/withdraw", "/offers/new"):
            async with inami.get(base + "/admin/datasets/kakogawa-aed" + path) as r:
                assert r.status == 404, path
        for path in ("/publish", "/refresh", "/withdraw", "/edit", "/offers/preview", "/offers"):
            assert (await post(inami, base + "/admin/datasets/kakogawa-aed" + path, {}, t2))[0] == 404
        # nor by uploading a file that names it
        doc = yaml.safe_dump({**_doc("inami-evil"), "publisher": "282103"}, allow_unicode=True)
        data = aiohttp.FormData({"csrf_token": t2})
        data.add_field("file", doc.encode(), filename="evil.yaml", content_type="application/yaml")
        assert (await post(inami, base + "/admin/datasets/upload", data, None))[0] == 403
        assert (await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed"))["publisher"] == "282103"
    finally:
        await admin.close()
        await inami.close()


def _doc(ident: str) -> dict:
    return {"id": ident, "title": {"ja": "ため池一覧"}, "description": {"ja": "町内のため池"},
            "themes": ["防災"], "license": "CC-BY-4.0",
            "schema": {"fields": [{"name": "名称"}, {"name": "住所"}, {"name": "緯度"}, {"name": "経度"}]},
            "source": {"adapter": "csv", "path": "aed.csv", "encoding": "cp932"}}


async def test_uploads_are_bounded_utf8_yaml(mesh):
    h, base = mesh
    write_csv(h.root / "kakogawa" / "publishers" / "282103" / "files" / "aed.csv")
    admin = await sign_in(base, "tanaka")
    try:
        token = await csrf(admin, base)

        async def upload(content: bytes) -> tuple[int, str]:
            data = aiohttp.FormData({"csrf_token": token})
            data.add_field("file", content, filename="d.yaml", content_type="application/yaml")
            status, text, _ = await post(admin, base + "/admin/datasets/upload", data, None)
            return status, text

        status, text = await upload(b"id: x\n" + b"#" * (300 * 1024))
        assert status == 400 and "大きすぎます" in text
        status, text = await upload(yaml.safe_dump(_doc("kakogawa-ponds"), allow_unicode=True)
                                    .encode("cp932"))
        assert status == 400 and "UTF-8" in text
        status, text = await upload(b"id: [unclosed\n")
        assert status == 400 and "YAML" in text
        status, text = await upload(yaml.safe_dump({**_doc("kakogawa-ponds"), "themes": ["宇宙"]},
                                                   allow_unicode=True).encode())
        assert status == 400 and "不明な分野です: 宇宙" in text and 'id="f-file-error"' in text
        data = aiohttp.FormData({"csrf_token": token, "file": "not a file"})
        assert (await post(admin, base + "/admin/datasets/upload", data, None))[0] == 400
        status, _ = await upload(yaml.safe_dump(_doc("kakogawa-ponds"), allow_unicode=True).encode())
        assert status == 303
        async with admin.get(base + "/admin/datasets/kakogawa-ponds/preview") as r:
            assert r.status == 200 and "公開できます" in await r.text()
        catalog_only = {k: v for k, v in _doc("kakogawa-list").items() if k != "source"}
        status, _ = await upload(yaml.safe_dump(catalog_only, allow_unicode=True).encode())
        assert status == 303
        async with admin.get(base + "/admin/datasets/kakogawa-list/preview") as r:
            assert r.status == 200 and "データソースの指定がない" in await r.text()
    finally:
        await admin.close()


async def test_offer_form_preview_and_save(mesh):
    h, base = mesh
    write_csv(h.root / "kakogawa" / "publishers" / "282103" / "files" / "aed.csv")
    admin = await sign_in(base, "tanaka")
    try:
        token = await csrf(admin, base)
        assert (await post(admin, base + "/admin/datasets/new", form("kakogawa-aed"), token))[0] == 303
        assert (await post(admin, base + "/admin/datasets/kakogawa-aed/publish", {}, token))[0] == 303
        url = base + "/admin/datasets/kakogawa-aed/offers"
        offer = {"offer_id": "bousai-use", "purposes": "防災, 研究", "type_municipality": "on",
                 "spatial_mode": "listed", "area_282014": "on", "area_27": "on",
                 "valid_until": "2027-03-31", "max_records": "1000", "delete_days": "90"}
        status, text, _ = await post(admin, url + "/preview", {**offer, "identity_level": "2"}, token)
        assert status == 400 and 'id="f-identity_level-error"' in text and "consent" in text
        status, text, _ = await post(admin, url + "/preview", {**offer, "valid_until": "3/31"}, token)
        assert status == 400 and 'id="f-valid_until-error"' in text
        assert 'value="防災, 研究"' in text and 'name="area_282014" checked' in text
        status, text, _ = await post(admin, url + "/preview", offer, token)
        assert status == 200
        assert "防災または研究の目的に限り、姫路市（282014）または大阪府内の市区町村が利用できます" in text
        assert "利用者の義務：受け取ってから 90 日以内にデータを削除すること" in text
        for shown in ("防災", "研究", "市区町村", "姫路市（282014）", "大阪府（27）", "1,000",
                      "2027-04-01 00:00 JST", "90"):
            assert shown in text, shown
        before = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        assert not [o for o in before.get("offers", []) if o["id"] == "bousai-use"]   # not saved yet
        assert (await post(admin, url, {**offer, "confirm": "yes"}, None))[0] == 403
        status, _, location = await post(admin, url, {**offer, "confirm": "yes"}, token)
        assert status == 303 and location == "/admin/datasets/kakogawa-aed?done=offer_saved"
        found = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        saved = next(o for o in found["offers"] if o["id"] == "bousai-use")
        constraints = saved["policy"]["permissions"][0]["constraints"]
        assert {"leftOperand": "spatial", "operator": "isAnyOf", "rightOperand": ["282014", "27"]} \
            in constraints
        async with admin.get(base + "/admin/datasets/kakogawa-aed") as r:
            assert "オファー bousai-use" in await r.text()
        # editing a published dataset: a draft beside it until published again
        async with admin.get(base + "/admin/datasets/kakogawa-aed/edit") as r:
            text = await r.text()
        assert 'value="姫路市 AED設置箇所（テスト）"' in text and "経度:number" in text
        status, _, _ = await post(admin, base + "/admin/datasets/kakogawa-aed/edit",
                                  form("ignored-id", title_ja="加古川市 AED（改訂）"), token)
        assert status == 303
        async with admin.get(base + "/admin/datasets/") as r:
            assert "未公開の変更あり" in await r.text()
        assert (await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed"))["title"]["ja"] == \
            "姫路市 AED設置箇所（テスト）"
        assert (await post(admin, base + "/admin/datasets/kakogawa-aed/publish", {}, token))[0] == 303
        again = await http_json(f"{h.http_url}/api/v1/datasets/kakogawa-aed")
        assert again["title"]["ja"] == "加古川市 AED（改訂）" and again["version"] > found["version"]
        assert [o["id"] for o in again["offers"]] == ["bousai-use"]          # offers kept
    finally:
        await admin.close()


async def test_standard_layout_edition_and_missing_values_in_the_form(mesh):
    h, base = mesh
    files = h.root / "kakogawa" / "publishers" / "282103" / "files"
    write_csv(files / "aed.csv")
    admin = await sign_in(base, "tanaka")
    try:
        token = await csrf(admin, base)
        async with admin.get(base + "/admin/datasets/new") as r:
            text = await r.text()
        assert text.count("<optgroup") == 3 and 'name="standard_edition"' in text
        jichitai = "自治体標準オープンデータセット"
        toilets = form("kakogawa-toilets", schema="", mapping="", standard_layout="公衆トイレ一覧",
                       standard_edition=jichitai, standard_missing="色: ー")
        status, text, _ = await post(admin, base + "/admin/datasets/new", toilets, token)
        assert status == 400 and 'id="f-standard_missing-error"' in text
        assert "standard.missingValues.色" in text
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     {**toilets, "standard_layout": "文化財一覧", "standard_missing": ""},
                                     token)
        assert status == 400 and 'id="f-standard_layout-error"' in text
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     {**toilets, "standard_edition": "1999"}, token)
        assert status == 400 and 'id="f-standard_edition-error"' in text
        # valid: stored as standard {layout, edition id, missingValues}, shown as layout（edition）
        declared = {**toilets, "standard_missing": "*: ー\n男性トイレ総数: 不明"}
        status, _, _ = await post(admin, base + "/admin/datasets/new", declared, token)
        assert status == 303, _
        draft = json.loads((files.parent / "drafts" / "kakogawa-toilets.json").read_text())
        assert draft["description"]["standard"] == {
            "layout": "公衆トイレ一覧", "edition": jichitai,
            "missingValues": {"*": ["ー"], "男性トイレ総数": ["不明"]}}
        async with admin.get(base + "/admin/datasets/kakogawa-toilets") as r:
            assert f"公衆トイレ一覧（{jichitai}）" in await r.text()
        async with admin.get(base + "/admin/datasets/kakogawa-toilets/edit") as r:
            text = await r.text()
        assert re.search(rf'<optgroup label="{jichitai}">\s*<option value="公衆トイレ一覧" selected>', text)
        assert "男性トイレ総数: 不明" in text
        # an old dataset (standard_type) shows the 2026 edition and is re-saved unchanged
        status, _, _ = await post(admin, base + "/admin/datasets/new",
                                  form("kakogawa-aed2", schema="", mapping="",
                                       standard_layout="AED設置箇所一覧",
                                       standard_edition=DEFAULT_EDITION), token)
        assert status == 303, _
        path = files.parent / "drafts" / "kakogawa-aed2.json"
        before = json.loads(path.read_text())["description"]
        assert before["standard_type"] == "AED設置箇所一覧" and "standard" not in before
        async with admin.get(base + "/admin/datasets/kakogawa-aed2/edit") as r:
            text = await r.text()
        shown = {m[0]: m[1] for m in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', text)}
        assert re.search(r'<option value="エリアデータ標準データモデル-2026" selected>', text)
        values = form("kakogawa-aed2", schema="", mapping="", standard_layout="AED設置箇所一覧",
                      standard_edition=DEFAULT_EDITION, standard_key=shown["standard_key"])
        status, _, _ = await post(admin, base + "/admin/datasets/kakogawa-aed2/edit", values, token)
        assert status == 303
        assert json.loads(path.read_text())["description"] == before
        async with admin.get(base + "/admin/datasets/kakogawa-aed2") as r:
            assert "AED設置箇所一覧（エリアデータ標準データモデル 2026年版）" in await r.text()
        # a draft that declares no layout: the preview suggests the one its header matches
        names = [f.name for f in get_standard("公衆トイレ一覧", "自治体標準").fields]
        row = {"名称": "加古川駅南公衆トイレ", "緯度": "34.7568", "経度": "134.8413"}
        (files / "toilets.csv").write_bytes("\r\n".join(
            [",".join(names), ",".join(row.get(n, "") for n in names), ""]).encode("cp932"))
        status, text, _ = await post(admin, base + "/admin/datasets/new",
                                     form("kakogawa-toilets2", source_path="toilets.csv",
                                          schema="名称\n緯度:number\n経度:number", mapping=""),
                                     token)
        assert status == 303, re.findall(r'id="f-([\w-]+)-error"[^>]*>(.*?)<', text)
        async with admin.get(base + "/admin/datasets/kakogawa-toilets2/preview") as r:
            text = await r.text()
        assert f"「公衆トイレ一覧（{jichitai}）」のレイアウトに近いと判定しました（一致度 100%）" in text
        async with admin.get(base + "/admin/datasets/kakogawa-aed2/preview") as r:
            assert "のレイアウトに近いと判定しました" not in await r.text()   # 名称,住所,緯度,経度
    finally:
        await admin.close()
