"""The connector's console accounts: created with the CLI, signed in over HTTP against a real
connector, roles enforced, disabled accounts refused, tenant scope carried."""

from __future__ import annotations

import aiohttp
import pytest

from .browser.conftest import PASSWORD
from .conftest import MeshHarness

pytestmark = pytest.mark.integration


async def _account(h: MeshHarness, node: str, name: str, role: str, *extra: str) -> None:
    pw = h.root / f"{name}.pw"
    pw.write_text(PASSWORD + "\n")
    pw.chmod(0o600)
    rc, out, err = await h.cli("connector", "operator", "add", "--data-dir", str(h.root / node),
                               "--name", name, "--role", role, "--password-file", str(pw), *extra)
    assert rc == 0, err
    assert name in out


async def _sign_in(base: str, name: str, password: str = PASSWORD) -> tuple[aiohttp.ClientSession, int]:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.get(base + "/admin/login") as r:
        token = r.cookies["am_csrf"].value
    async with s.post(base + "/admin/login", allow_redirects=False,
                      data={"name": name, "password": password, "csrf_token": token}) as r:
        return s, r.status


async def test_console_accounts_roles_and_disable(running: MeshHarness):
    h = running
    await h.enrol("himeji", "282014")
    node = await h.start_connector("himeji")
    base = f"http://127.0.0.1:{node.ready['http_port']}"
    await _account(h, "himeji", "tanaka", "admin")
    await _account(h, "himeji", "kansa", "auditor")
    rc, _, err = await h.cli("connector", "operator", "add", "--data-dir", str(h.root / "himeji"),
                             "--name", "bad", "--role", "admin", "--tenant", "282016",
                             "--password-file", str(h.root / "tanaka.pw"))
    assert rc != 0 and "282016" in err                      # a tenant id with a wrong check digit
    rc, out, _ = await h.cli("connector", "operator", "list", "--data-dir", str(h.root / "himeji"))
    assert out.splitlines()[0].split("\t")[:3] == ["name", "role", "tenant"]

    s, status = await _sign_in(base, "tanaka", "wrong password!")
    assert status == 401
    await s.close()
    admin, status = await _sign_in(base, "tanaka")
    auditor, status2 = await _sign_in(base, "kansa")
    try:
        assert (status, status2) == (303, 303)
        for s in (admin, auditor):
            async with s.get(base + "/admin/") as r:
                assert r.status == 200
            async with s.get(base + "/api/v1/peers") as r:      # node-operator: admin only
                assert r.status == (200 if s is admin else 403), await r.text()
        async with admin.get(base + "/api/v1/status") as r:
            assert r.status == 200
        rc, _, err = await h.cli("connector", "operator", "disable", "--data-dir",
                                 str(h.root / "himeji"), "--name", "tanaka")
        assert rc == 0, err
        async with admin.get(base + "/admin/", headers={"Accept": "application/json"}) as r:
            assert r.status == 401
        s, status = await _sign_in(base, "tanaka")
        assert status == 401
        await s.close()
    finally:
        await admin.close()
        await auditor.close()
