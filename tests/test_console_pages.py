"""The operator console over HTTP, against a real registry process: forms refuse bad input with
a 4xx page and the CLI's message, changes need the session's CSRF token and the admin role,
every change lands in the audit log with the signed-in operator, a join token is shown once."""

from __future__ import annotations

import html
import re
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from .browser.conftest import add_operator
from .conftest import MeshHarness

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html,application/xhtml+xml"}
UNTRANSLATED = re.compile(r"[>\s\"]console\.[a-z_]+\.[a-z_.]+")   # a key the catalog lacks


class Browser:
    """A cookie-keeping client signed in to the console, as a browser is."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.s, self.csrf = base, session, ""

    async def sign_in(self, name: str) -> None:
        async with self.s.get(self.base + "/admin/login", headers=HTML) as r:
            token = _input(await r.text(), "csrf_token")
        async with self.s.post(self.base + "/admin/login", headers=HTML, allow_redirects=False,
                               data={"name": name, "password": "correct horse battery staple",
                                     "csrf_token": token, "next": "/admin/"}) as r:
            assert r.status == 303, await r.text()
        status, text = await self.get("/admin/")
        assert status == 200, text
        self.csrf = _input(text, "csrf_token")

    async def get(self, path: str) -> tuple[int, str]:
        async with self.s.get(self.base + path, headers=HTML) as r:
            return r.status, await r.text()

    async def post(self, path: str, data: dict[str, str], *, csrf: bool = True
                   ) -> tuple[int, str, str]:
        """(status, body, Location) of a form POST, redirects not followed."""
        form = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        async with self.s.post(self.base + path, data=form, headers=HTML,
                               allow_redirects=False) as r:
            return r.status, await r.text(), r.headers.get("Location", "")


def _input(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"no {name} field"
    return m.group(1)


@pytest.fixture
async def admin(running: MeshHarness):
    await add_operator(running, "yamada", "admin")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        b = Browser(running.http_url, s)
        await b.sign_in("yamada")
        yield b


async def test_add_participant_wrong_check_digit_then_right(running: MeshHarness, admin: Browser):
    status, page, _ = await admin.post("/admin/participants",
                                       {"type": "municipality", "id": "282016", "name": "豊岡市"})
    assert status == 400
    assert "全国地方公共団体コード 282016 の検査数字が誤っています（6 ではなく 4）" in page
    assert 'aria-invalid="true"' in page and 'value="282016"' in page and 'value="豊岡市"' in page
    status, page, _ = await admin.post("/admin/participants",
                                       {"type": "private", "id": "1234567890123", "name": "株式会社"})
    assert status == 400 and "法人番号 1234567890123 の検査用数字" in page
    status, _, location = await admin.post("/admin/participants",
                                           {"type": "municipality", "id": "282014", "name": "x"})
    assert status == 409                                   # already there (from the harness)

    status, _, location = await admin.post("/admin/participants",
                                           {"type": "municipality", "id": "282090", "name": "豊岡市"})
    assert (status, location) == (303, "/admin/participants/282090?done=participant_added")
    status, page = await admin.get(location)
    assert status == 200 and "参加者を登録しました" in page and "兵庫県" in page
    status, _, location = await admin.post("/admin/participants/282090/certify", {})
    assert (status, location) == (303, "/admin/participants/282090?done=certified")
    # both changes are in the audit log as the signed-in operator's, over a session
    con = sqlite3.connect(running.registry_dir / "registry.db")
    rows = con.execute("SELECT actor, role, source, action, target, outcome FROM admin_audit "
                       "WHERE actor = 'yamada' ORDER BY seq").fetchall()
    con.close()
    assert [(r[3], r[4], r[5]) for r in rows] == [
        ("participant.add", "282016", "invalid_participant_id"),
        ("participant.add", "1234567890123", "invalid_participant_id"),
        ("participant.add", "282014", "conflict"),
        ("participant.add", "282090", "ok"), ("participant.certify", "282090", "ok")]
    assert all(r[1] == "admin" and r[2].endswith("(session)") for r in rows)
    status, page = await admin.get("/admin/audit")
    assert status == 200 and "participant.certify" in page and "改ざんされていません" in page


@pytest.mark.parametrize(("kind", "pid"), [("municipality", "282016"), ("prefecture", "280001"),
                                          ("private", "1234567890123"), ("municipality", "28201"),
                                          ("municipality", "２８２０１４")])
async def test_add_form_refuses_an_id_with_the_clis_own_message(running: MeshHarness,
                                                                admin: Browser, kind: str, pid: str):
    """The form and ``areamesh registry participant add`` refuse the same ids with the same
    Japanese sentence (both ask AdminService, which asks mesh/ids.py)."""
    status, page, _ = await admin.post("/admin/participants", {"type": kind, "id": pid, "name": "x"})
    assert status == 400
    shown = re.search(r'<p class="error-text" id="f-id-error">([^<]+)</p>', page).group(1)
    rc, _, err = await running.cli("registry", "participant", "add", "--data-dir",
                                   str(running.registry_dir), "--id", pid, "--name", "x",
                                   "--type", kind)
    assert rc != 0
    said = next(line.removeprefix("エラー: ") for line in err.splitlines()
                if line.startswith("エラー: "))
    assert html.unescape(shown) == said, (shown, said)


async def test_post_without_csrf_is_refused(running: MeshHarness, admin: Browser):
    status, page, _ = await admin.post("/admin/participants/282014/certify", {}, csrf=False)
    assert status == 403 and "確認用トークン" in page
    status, _, _ = await admin.post("/admin/participants/282014/certify",
                                    {"csrf_token": "x" * 43}, csrf=False)
    assert status == 403
    status, page = await admin.get("/admin/participants/282014")
    assert "認定待ち" in page                             # nothing changed


async def test_auditor_sees_but_cannot_change(running: MeshHarness):
    await add_operator(running, "sato", "auditor")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        auditor = Browser(running.http_url, s)
        await auditor.sign_in("sato")
        for path in ("/admin/", "/admin/participants", "/admin/participants/282014",
                     "/admin/tokens", "/admin/nodes", "/admin/usage", "/admin/criteria",
                     "/admin/revocation", "/admin/audit",
                     "/admin/participants/282014/suspend/confirm"):
            status, page = await auditor.get(path)
            assert status == 200, (path, page[:300])
            forms = re.findall(r'<form method="post" action="([^"]+)"', page)
            assert forms == ["/admin/logout"], (path, forms)      # sign-out only
            assert "監査者として閲覧しています" in page
            assert not UNTRANSLATED.search(page), UNTRANSLATED.search(page)
        for path, data in (("/admin/participants", {"type": "municipality", "id": "282090",
                                                    "name": "豊岡市"}),
                           ("/admin/participants/282014/certify", {}),
                           ("/admin/participants/282014/suspend", {"reason": "x"}),
                           ("/admin/tokens", {"participant": "282014", "ttl": "1h"}),
                           ("/admin/criteria", {"criteria": "auditor was here"})):
            status, page, _ = await auditor.post(path, data)
            assert status == 403, (path, page[:300])
            assert "この操作は許可されていません" in page


async def test_unknown_things_are_404_pages(admin: Browser):
    for path in ("/admin/participants/999999", "/admin/participants/999999/suspend/confirm",
                 "/admin/tokens/aaaaaaaaaa/revoke/confirm",
                 "/admin/nodes/282014/nosuch/revoke/confirm",
                 "/admin/hosting/282014/remove/confirm"):
        status, page = await admin.get(path)
        assert status == 404, path
        assert "<h1>" in page and "ページが見つかりません" in page
    status, page = await admin.get("/admin/participants/999999")
    assert "参加者 999999 は登録されていません" in page
    status, page = await admin.get("/admin/audit?before=-1")
    assert status == 400 and "<html" in page
    status, page = await admin.get("/admin/usage?period=2026-13")
    assert status == 400 and "存在しない日付" in page


async def test_a_json_client_gets_json_errors(running: MeshHarness, admin: Browser):
    async with admin.s.post(running.http_url + "/admin/participants",
                            data={"type": "municipality", "id": "282016", "name": "x",
                                  "csrf_token": admin.csrf}) as r:
        assert r.status == 400 and r.content_type == "application/json"
        assert (await r.json())["error"]["code"] == "invalid_participant_id"


async def test_join_token_shown_once_with_the_join_command(running: MeshHarness, admin: Browser):
    h = running
    status, page, _ = await admin.post("/admin/tokens", {"participant": "282014", "ttl": "soon"})
    assert status == 400 and "有効期間の形式が正しくありません" in page
    status, page, _ = await admin.post("/admin/tokens", {"participant": "282014", "ttl": "2h"})
    assert status == 201, page
    token = re.search(r'<pre id="join-token"><code>(am1\.[^<]+)</code>', page).group(1)
    command = re.search(r'<pre id="join-command"><code>([^<]+)</code>', page).group(1)
    assert command == ("areamesh connector join --data-dir /var/lib/areamesh/connector "
                       f"--registry {h.grpc_address} --enrol {h.enrol_address} "
                       f"--token {token} --name main")
    token_id = token.split(".")[1]
    secret = token.split(".")[2]
    status, listing = await admin.get("/admin/tokens")
    assert token_id in listing and secret not in listing and "未使用" in listing
    status, confirm = await admin.get(f"/admin/tokens/{token_id}/revoke/confirm")
    assert status == 200 and f'action="/admin/tokens/{token_id}/revoke"' in confirm
    status, _, location = await admin.post(f"/admin/tokens/{token_id}/revoke", {})
    assert (status, location) == (303, "/admin/tokens?done=token_revoked")
    status, listing = await admin.get(location)
    assert "参加トークンを失効させました" in listing and "失効" in listing
    rc, _, err = await h.join("himeji", token)
    assert rc != 0 and "revoked" in err
    status, page, _ = await admin.post(f"/admin/tokens/{token_id}/revoke", {})
    assert status == 409                                    # revoked already


async def test_usage_page_figures_and_chart_data(running: MeshHarness, admin: Browser):
    from .security.test_http_auth import record_usage

    record_usage(running, [("270008", "282014", 1234567), ("270008", "282103", 7)])
    status, page = await admin.get("/admin/usage?period=2026-11")
    assert status == 200
    assert "1,234,574" in page and "12,345,670" in page            # totals, with separators
    data = re.search(r"data-bars='([^']+)'", page).group(1)
    assert '"provided": [1234574, 0, 0]' in data.replace("&#34;", '"') or \
        '"provided":[1234574,0,0]' in data.replace("&#34;", '"')
    assert "2026-11-01 00:00 JST" in page and "姫路市" in page
    status, page = await admin.get("/admin/usage?period=2026-10")     # the period is the filter
    assert status == 200 and "この期間の利用記録はありません。" in page
    assert "1,234,574" not in page and "data-bars" not in page


async def test_english_pages(admin: Browser):
    for path, heading in (("/admin/?lang=en", "Operator console"),
                          ("/admin/participants", "Participants"), ("/admin/nodes", "Nodes"),
                          ("/admin/tokens", "Join tokens"), ("/admin/audit", "Audit log"),
                          ("/admin/usage", "Usage"), ("/admin/revocation", "Revocation list"),
                          ("/admin/criteria", "Certification criteria")):
        status, page = await admin.get(path)             # the choice is remembered (cookie)
        assert status == 200 and f"<h1>{heading}</h1>" in page, path
        assert not UNTRANSLATED.search(page), (path, UNTRANSLATED.search(page))


def test_join_command_names_the_bound_ports_or_the_page_host():
    from types import SimpleNamespace

    from aiohttp.test_utils import make_mocked_request

    from registry.config import RegistryConfig
    from registry.web.console.common import CONSOLE
    from registry.web.console.enrolment import join_command

    def command(grpc: str, host: str) -> str:
        app = {CONSOLE: SimpleNamespace(config=RegistryConfig(data_dir=Path("."), grpc_listen=grpc))}
        request = make_mocked_request("POST", "/admin/tokens", headers={"Host": host}, app=app)
        return join_command(request, "am1.x")

    assert "--registry 10.1.2.3:7700 --enrol 10.1.2.3:7699 " in command("10.1.2.3:7700", "a:1")
    assert "--registry registry.example.lg.jp:7700 --enrol registry.example.lg.jp:7699 " in \
        command("0.0.0.0:7700", "registry.example.lg.jp:7780")
    assert "--registry '[2001:db8::1]:7700' " in command("[::]:7700", "[2001:db8::1]:7780")


async def test_suspend_after_confirmation_then_reinstate(running: MeshHarness, admin: Browser):
    await running.enrol("himeji", "282014")
    status, page = await admin.get("/admin/participants/282014/suspend/confirm")
    assert status == 200 and "失効するノード: 1 台" in page
    assert 'action="/admin/participants/282014/suspend"' in page
    status, _, location = await admin.post("/admin/participants/282014/suspend",
                                           {"reason": "認定基準の違反"})
    assert (status, location) == (303, "/admin/participants/282014?done=suspended")
    status, page = await admin.get(location)
    assert "停止中" in page and "停止を解除する" in page and "認定する" not in page
    status, page, _ = await admin.post("/admin/tokens", {"participant": "282014", "ttl": "1h"})
    assert status == 409 and "参加者 282014 は停止中です" in page
    status, _, location = await admin.post("/admin/participants/282014/reinstate", {})
    assert (status, location) == (303, "/admin/participants/282014?done=reinstated")
    status, page = await admin.get(location)
    assert "参加者の停止を解除しました" in page and "認定待ち" in page
    con = sqlite3.connect(running.registry_dir / "registry.db")
    suspended = con.execute("SELECT details FROM admin_audit WHERE action = "
                            "'participant.suspend'").fetchone()
    con.close()
    assert "認定基準の違反" in suspended[0]


async def test_audit_log_pages_newest_first(admin: Browser):
    for i in range(52):                         # refused attempts are audited too
        await admin.post("/admin/participants", {"type": "municipality", "id": f"9{i:05d}",
                                                 "name": "x"})
    status, first = await admin.get("/admin/audit")     # 4 entries of the harness's CLI + 52
    seqs = [int(s) for s in re.findall(r'<td class="num">(\d+)</td>', first)]
    assert status == 200 and seqs == list(range(56, 6, -1))
    older = re.search(r'href="(/admin/audit\?before=\d+)"', first).group(1)
    assert older == "/admin/audit?before=7"
    status, second = await admin.get(older)
    assert [int(s) for s in re.findall(r'<td class="num">(\d+)</td>', second)] == [6, 5, 4, 3, 2, 1]
    assert "さらに古い記録" not in second and "最新の記録へ" in second


async def test_participant_list_of_the_whole_country_is_searched_and_paged(
        running: MeshHarness, admin: Browser):
    rc, _, err = await running.cli("registry", "participant", "import", "--data-dir",
                                   str(running.registry_dir))
    assert rc == 0, err
    status, page = await admin.get("/admin/participants")
    assert status == 200 and not UNTRANSLATED.search(page)
    assert page.count('<th scope="row">') == 50
    total = int(re.search(r"([\d,]+) 件中", page).group(1).replace(",", ""))
    assert total >= 1788
    assert 'rel="next"' in page
    for q in ("あかし", "アカシ", "ｱｶｼ", "明石", "28203"):
        status, page = await admin.get(f"/admin/participants?q={q}")
        assert status == 200
        assert '/admin/participants/282031"' in page, q
        assert "アカシシ" in page                     # the reading, under the name
        assert '/admin/participants/131016"' not in page    # 千代田区 is not shown
    status, page = await admin.get("/admin/participants?status=certified")
    assert page.count('<th scope="row">') == 0 and "条件に合う参加者はいません" in page
    status, page = await admin.get("/admin/participants?page=99999&q=%E5%B8%82")   # 市
    assert status == 200 and 'aria-current="page"' in page                # the last page
    status, page = await admin.get("/admin/participants?page=x&status=%3Cscript%3E")
    assert status == 200 and "<script>" not in page and page.count('<th scope="row">') == 50


DESTRUCTIVE = re.compile(r"/(suspend|revoke|remove)$")


async def test_destructive_actions_only_from_their_confirmation_pages(running: MeshHarness,
                                                                      admin: Browser):
    """Suspending, revoking a node or a token and ending shared use: the pages that list them
    link to a confirmation page; only that page holds the form that acts."""
    await running.enrol("himeji", "282014")
    await admin.post("/admin/tokens", {"participant": "282103", "ttl": "1h"})
    await admin.post("/admin/hosting", {"tenant": "282103", "host": "282014"})
    confirms: set[str] = set()
    for path in ("/admin/participants/282014", "/admin/participants/282103", "/admin/tokens",
                 "/admin/nodes", "/admin/"):
        status, page = await admin.get(path)
        assert status == 200, path
        actions = re.findall(r'<form method="post" action="([^"]+)"', page)
        assert not [a for a in actions if DESTRUCTIVE.search(a)], (path, actions)
        confirms |= set(re.findall(r'href="(/admin/[^"]+/confirm)"', page))
    kinds = {c.split("/")[2] for c in confirms}
    assert kinds == {"participants", "tokens", "nodes", "hosting"}, confirms
    for confirm in confirms:
        status, page = await admin.get(confirm)
        assert status == 200, confirm
        actions = re.findall(r'<form method="post" action="([^"]+)"', page)
        assert confirm.removesuffix("/confirm") in actions, (confirm, actions)
