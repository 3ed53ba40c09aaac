"""``areamesh demo --once``: registry + three connectors that see each other."""

from __future__ import annotations

import pytest

from areamesh.processes import run_cli

pytestmark = pytest.mark.integration


# The demo runs about 45 s on a quiet machine; a loaded one (CI's) has seen it take over 200 s.
@pytest.mark.timeout(330)
async def test_demo_once_enrols_publishes_searches_and_negotiates(tmp_path):
    rc, out, err = await run_cli("demo", "--once", "--workdir", str(tmp_path / "demo"), timeout=300)
    assert rc == 0, out + err
    # the first URL printed is the portal's, with a console sign-in whose password works
    import re
    first_url = re.search(r"http://[0-9.:]+/\S*", out).group(0)
    assert "カタログポータル" in next(line for line in out.splitlines() if first_url in line)
    password = re.search(r"パスワード / password: (\S+)", out).group(1)
    assert len(password) >= 16 and out.count(password) == 1
    await _console_accepts(tmp_path / "demo" / "registry", password)
    for name in ("大阪府", "姫路市", "加古川市"):
        assert f"■ {name} が参加" in out
    ok_lines = [line for line in out.splitlines()     # pings between connectors
                if line.strip().startswith("OK ") and " → " in line]
    assert len(ok_lines) == 6, out
    assert not [line for line in out.splitlines() if line.strip().startswith("NG ")]
    assert "every connector sees the other two" in out
    assert "published inami-ponds version 1 (稲美町)" in out          # hosted tenant
    assert "refused as expected" in out                                # 姫路市 cannot publish for 稲美町
    assert "「防災」: 3 件" in out
    assert "himeji-aed（目的: 防災）: 合意が成立しました" in out and "FINALIZED" in out
    assert "TERMINATED" in out and "purpose '観光' is not '研究'" in out
    # 大阪府 fetches 姫路市's Shift_JIS 2019-layout AED list through the mapping
    assert "受信完了 / received: 40 件" in out and "受信 / received 40 件" in out
    assert "ID=2820141  名称=姫路市役所" in out and "屋内／屋外区分=屋内" in out
    assert "data arrives translated" in out
    # personal data: only consenting residents, the flow is visible, withdrawal, ID linkage
    assert "consent relayed over the mesh: " in out   # H-0002's, through ConsentService
    assert "大阪府が受信 / received: ['H-0001', 'H-0002']" in out
    assert "where my data went: → 270008 himeji-health-checkups 目的 健康増進" in out
    assert "ledger intact" in out and "次の取得 / next fetch: ['H-0002']" in out
    assert "level raised: 270008 OSK-7731 ial 2→3" in out
    pseudonyms = [line.rsplit(": ", 1)[1] for line in out.splitlines() if "pairwise pseudonym for" in line]
    assert len(pseudonyms) == 2 and len(set(pseudonyms)) == 2
    assert "personal data flows only under consent" in out
    # the operating organisation's month: services, both sides' signed reports, a billing run
    assert "「広域防災マップ」(osaka-bousai-map" in out and "「観光案内アプリ」" in out
    assert re.search(r"signed usage reports held: [1-9]\d* from providers, [1-9]\d* from consumers", out)
    shares = dict(re.findall(r"^    (\d{6})  \S+  ([\d,]+)円$", out, re.M))
    assert set(shares) == {"270008", "282014", "282103", "283819"}, out
    assert sum(int(v.replace(",", "")) for v in shares.values()) == 400_000
    assert int(shares["282014"].replace(",", "")) < int(shares["282103"].replace(",", ""))  # provider
    assert re.search(r"data map: http://127\.0\.0\.1:\d+/admin/datamap", out)
    # the resident portal: 姫路市's OpenID provider (pyop), a sign-in the demo did itself, and
    # how a person signs in (two residents, generated passwords printed once each)
    assert "姫路市's OpenID provider: http://127.0.0.1:" in out
    assert "OK 住民 H-0001 がOpenIDでサインインし" in out and "saw where their data went: yes" in out
    assert re.search(r"resident portal: http://127\.0\.0\.1:\d+/portal/ ", out)
    resident_passwords = re.findall(r"利用者ID / user: (H-000[12]).*resident password: (\S+)", out)
    assert [r for r, _ in resident_passwords] == ["H-0001", "H-0002"]
    assert all(len(p) >= 12 and out.count(p) == 1 for _, p in resident_passwords)


async def _console_accepts(registry_dir, password: str) -> None:
    """The demo registry, served again here: its portal URL answers the catalog portal with
    the demo's datasets, and the printed password signs in to its console."""
    import aiohttp

    from areamesh.processes import ManagedProcess, areamesh_command

    proc = ManagedProcess("registry", areamesh_command(
        "registry", "serve", "--data-dir", str(registry_dir), "--grpc", "127.0.0.1:0",
        "--http", "127.0.0.1:0"), log_path=registry_dir.parent / "logs" / "registry-again.log")
    ready = await proc.start()
    try:
        base = f"http://127.0.0.1:{ready['http_port']}"
        async with aiohttp.ClientSession() as s:     # the portal URL answers the catalog portal
            async with s.get(base + "/", headers={"Accept": "text/html"}) as r:
                assert r.status == 200 and r.content_type == "text/html"
                assert "データを探す" in await r.text()
            async with s.get(base + "/", params={"q": "防災"}, headers={"Accept": "text/html"}) as r:
                assert 'href="/datasets/himeji-aed"' in await r.text()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
            async with s.get(base + "/admin/login") as r:
                token = r.cookies["am_csrf"].value
            form = {"name": "demo-admin", "password": password, "csrf_token": token}
            async with s.post(base + "/admin/login", data=form, allow_redirects=False) as r:
                assert r.status == 303 and "am_session" in r.cookies
            form["password"] = password + "x"
            async with s.post(base + "/admin/login", data=form, allow_redirects=False) as r:
                assert r.status == 401
    finally:
        await proc.stop()
